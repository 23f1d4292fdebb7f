"""Reversals: a mistake is corrected by an entry of the opposite amount that points at the original.

Entries are never updated or deleted. An entry is reversed at most once (a unique index on
``reversal_of_id``); a reversal is not reversed again (post a new entry instead); an order's
entries are corrected by refunding the order, which keeps the order and its points in step.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller
from services.common.errors import FailedPrecondition, NotFound
from services.common.scope import require_managed_mall
from services.ledger.convert import posted_to_proto
from services.ledger.journal import Journal
from services.ledger.models import Account, JournalEntry
from services.ledger.postings import Posting
from services.ledger.scope import require_visible


async def reverse_entry(session: AsyncSession, request_id: str, entry_id: int, note: str, *, now: datetime,
                        caller: Caller) -> pb.ReverseEntryResponse:
    entry = await session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFound(f"no entry {entry_id}", field="entry_id")
    account = await session.get(Account, entry.account_id)
    assert account is not None  # a foreign key
    # A mall admin corrects only what happened in their malls, for members they see.
    require_managed_mall(caller, entry.mall_id, "entry_id")
    await require_visible(session, caller, account.member_id)
    if entry.kind == pb.ENTRY_KIND_REVERSAL:
        raise FailedPrecondition(f"entry {entry_id} is a reversal; post a new entry instead", field="entry_id")
    if entry.order_id is not None:
        raise FailedPrecondition(f"entry {entry_id} belongs to order {entry.order_id}; refund the order instead",
                                 field="entry_id")
    reversed_by = await session.scalar(select(JournalEntry.id).where(JournalEntry.reversal_of_id == entry_id))
    if reversed_by is not None:
        raise FailedPrecondition(f"entry {entry_id} was already reversed by entry {reversed_by}", field="entry_id")
    posting = Posting(
        member_id=account.member_id, asset=account.asset, kind=pb.ENTRY_KIND_REVERSAL, amount=-entry.amount,
        reason_template_id=entry.reason_template_id, reason=entry.reason, note=note or f"reverses entry {entry_id}",
        mall_id=entry.mall_id, store_id=entry.store_id, reversal_of_id=entry.id, field="", amount_field="entry_id")
    [posted] = await Journal(session, now=now, operator_id=caller.staff_id).post(request_id, [posting])
    return pb.ReverseEntryResponse(entry=posted_to_proto(posted))
