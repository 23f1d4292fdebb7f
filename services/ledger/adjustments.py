"""Manual adjustments from the back office: increase or decrease a balance, with a reason.

The dialog's fields: direction and value, a reason picked from the reason templates, an
optional description, voucher and document time, the settlement mall (required when the
operator manages several malls; an operator of one mall settles in it) and an optional store.
The entry records the operator and emits ``ledger.entry.posted`` like any other change.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller, Role
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.scope import require_managed_mall
from services.common.validation import bounded_text, known_enum, parse_int_id
from services.ledger.convert import posted_to_proto
from services.ledger.inputs import asset, id_text, member_id, past_time, positive_amount, signed
from services.ledger.journal import Journal
from services.ledger.places import checked
from services.ledger.postings import Posting
from services.ledger.scope import require_visible

ADJUSTERS = (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN)


def settlement_mall(requested: str, caller: Caller) -> str:
    """The mall an adjustment settles in, as the operator's malls allow (services/common/scope.py)."""
    mall = id_text(requested, "mall_id")
    if caller.role == Role.SYSTEM:
        return mall
    if not mall and len(caller.mall_ids) == 1:
        (mall,) = caller.mall_ids  # an operator of one mall settles in it
    if not mall:
        raise InvalidArgument("is required: the operator manages several malls", field="mall_id")
    if caller.role == Role.MALL_ADMIN:
        require_managed_mall(caller, mall)
    elif caller.mall_ids and mall not in caller.mall_ids:  # a super admin given a list of malls keeps to it
        raise PermissionDenied(f"operator {caller.staff_id} does not manage mall {mall}", field="mall_id")
    return mall


def parse_adjustment(request: pb.AdjustBalanceRequest, caller: Caller, now: datetime) -> Posting:
    if caller.role not in ADJUSTERS:
        raise PermissionDenied(f"a {caller.role.value} may not adjust balances", field="role")
    member = member_id(request.member_id)
    which = asset(request.asset)
    direction = known_enum(pb.Direction, request.direction, "direction", allow_unspecified=False)
    value = positive_amount(request.value, "value")
    if not request.reason_template_id:
        raise InvalidArgument("is required: pick a reason template", field="reason_template_id")
    return Posting(
        member_id=member, asset=which, kind=pb.ENTRY_KIND_ADJUST, amount=signed(value, direction),
        reason_template_id=parse_int_id(request.reason_template_id, "reason_template_id"),
        note=bounded_text(request.description, "description"), voucher=bounded_text(request.voucher, "voucher"),
        document_at=past_time(request, "document_time", now), mall_id=settlement_mall(request.mall_id, caller),
        store_id=id_text(request.store_id, "store_id"), field="", amount_field="value")


async def adjust(session: AsyncSession, request_id: str, posting: Posting, *, now: datetime,
                 caller: Caller) -> pb.AdjustBalanceResponse:
    await checked(session, posting.mall_id, posting.store_id)
    journal = Journal(session, now=now, operator_id=caller.staff_id)
    await journal.account(posting.member_id, posting.asset)  # an unknown member is NOT_FOUND for everyone
    # Checked before the entry exists: an adjustment must not make a member "theirs" for a mall admin.
    await require_visible(session, caller, posting.member_id)
    [entry] = await journal.post(request_id, [posting])
    return pb.AdjustBalanceResponse(entry=posted_to_proto(entry))
