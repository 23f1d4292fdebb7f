"""The caller's scope on the ledger: services/common/scope.py's rule, over the ledger's own data.

A member is related to a mall when the customer service announced that they registered or bound a
card there (``member_mall``, kept by the ``ledger-member-malls`` consumer from the start of the
CUSTOMER stream), or when the ledger itself holds an order of theirs there, a voucher they redeemed
there, or a manual points or red-packet adjustment settled there (not one of an order). The same
relations the customer service records as interaction malls, so both services see the same members.
"""

from __future__ import annotations

from sqlalchemy import Connection, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller
from services.common.bulk import insert_rows
from services.common.chunks import chunks
from services.common.errors import PermissionDenied
from services.common.mapped import table_of
from services.common.scope import member_scope
from services.ledger.models import Account, JournalEntry, MemberMall, Order, VoucherRedemption

CHUNK = 1000
SETTLED_ASSETS = (pb.ASSET_POINTS, pb.ASSET_RED_PACKET)


def _related(member_id: str, malls: list[str]):
    settled = (select(JournalEntry.id).join(Account, Account.id == JournalEntry.account_id)
               .where(Account.member_id == member_id, Account.asset.in_(SETTLED_ASSETS),
                      JournalEntry.kind == pb.ENTRY_KIND_ADJUST, JournalEntry.order_id.is_(None),
                      JournalEntry.mall_id.in_(malls)))
    return or_(
        exists(select(MemberMall.member_id).where(MemberMall.member_id == member_id, MemberMall.mall_id.in_(malls))),
        exists(select(Order.id).where(Order.member_id == member_id, Order.mall_id.in_(malls))),
        exists(select(VoucherRedemption.id).where(VoucherRedemption.member_id == member_id,
                                                  VoucherRedemption.mall_id.in_(malls))),
        exists(settled))


async def require_visible(session: AsyncSession, caller: Caller, member_id: str) -> None:
    """PERMISSION_DENIED unless ``caller`` may see ``member_id``'s ledger."""
    scope = member_scope(caller)
    if scope.everyone or (scope.member_id and scope.member_id == member_id):
        return
    if scope.malls and await session.scalar(select(_related(member_id, sorted(scope.malls)))):
        return
    if scope.nobody:
        raise PermissionDenied(f"a {caller.role.value} may not read members' ledgers")
    raise PermissionDenied(f"member {member_id} is outside your malls")


# The consumer's handlers (``ledger-member-malls``): the registration and card malls, first relation kept.

def _links(conn: Connection, pairs: list[tuple[str, str, str]]) -> None:
    """Inserts the (member, mall, kind) links not stored yet."""
    wanted = {(m, mall): kind for m, mall, kind in pairs if m and mall}
    if not wanted:
        return
    members = sorted({m for m, _ in wanted})
    have: set[tuple[str, str]] = set()
    for chunk in chunks(members, CHUNK):
        have.update((m, mall) for m, mall in conn.execute(
            select(MemberMall.member_id, MemberMall.mall_id).where(MemberMall.member_id.in_(chunk))))
    rows = [(m, mall, kind) for (m, mall), kind in sorted(wanted.items()) if (m, mall) not in have]
    insert_rows(conn, table_of(MemberMall), ("member_id", "mall_id", "kind"), rows)


async def member_created(session: AsyncSession, event: customer_events.MemberCreated) -> None:
    """customer.member.created: the mall the member registered in."""
    await session.run_sync(lambda s: _links(s.connection(), [(event.member_id, event.registration_mall_id,
                                                              "register")]))


async def member_card_opened(session: AsyncSession, event: customer_events.MemberCardOpened) -> None:
    """customer.member.card_opened: the mall the card was bound in."""
    await session.run_sync(lambda s: _links(s.connection(), [(event.member_id, event.mall_id, "bind_card")]))


async def members_imported(session: AsyncSession, event: customer_events.MembersImported) -> None:
    """customer.members.imported: a fast import batch's registration and card malls (parallel to member_ids)."""
    pairs = [(m, mall, "register") for m, mall in zip(event.member_ids, event.registration_mall_ids)]
    pairs += [(m, mall, "bind_card") for m, mall in zip(event.member_ids, event.card_open_mall_ids)]
    await session.run_sync(lambda s: _links(s.connection(), pairs))
