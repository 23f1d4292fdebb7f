"""The ledger's view of members, kept from the customer service's events.

``member_state`` holds what the ledger needs to decide: the member's level (the accrual
multiplier) and whether the member is disabled (no points use, no member benefits). Each
handler runs in the consumer's transaction with its dedupe record; an event older than what
is stored (a redelivery after a newer one) changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.bulk import insert_rows, update_rows
from services.common.chunks import chunks
from services.common.clock import utcnow
from services.common.mapped import table_of
from services.common.outbox import add_events
from services.common.validation import aware, to_timestamp
from services.ledger.accounts import ASSETS, open_member_accounts
from services.ledger.models import Account, MemberState, OutboxEvent

CHUNK = 1000
ACCOUNTS_PER_EVENT = 1000  # accounts per ledger.accounts.opened event


def _time(message: Message, name: str) -> datetime | None:
    return aware(getattr(message, name).ToDatetime()) if message.HasField(name) else None


def _older(when: datetime | None, than: datetime | None) -> bool:
    return when is not None and than is not None and when < aware(than)


async def _state(session: AsyncSession, member_id: str) -> MemberState:
    state = await session.get(MemberState, member_id)
    if state is None:
        state = MemberState(member_id=member_id, level=0, disabled=False, deleted=False, virtual=False)
        session.add(state)
    return state


async def member_created(session: AsyncSession, event: customer_events.MemberCreated) -> None:
    """customer.member.created: the member's three accounts, and the level they start at."""
    await open_member_accounts(session, event)
    state = await _state(session, event.member_id)
    if state.level_changed_at is None:
        state.level = event.level


async def member_status_changed(session: AsyncSession, event: customer_events.MemberStatusChanged) -> None:
    """customer.member.status_changed: carries the whole new status."""
    state = await _state(session, event.member_id)
    when = _time(event, "change_time")
    if _older(when, state.status_changed_at):
        return
    state.disabled, state.deleted, state.virtual = event.disabled, event.deleted, event.virtual
    state.status_changed_at = when


async def member_level_changed(session: AsyncSession, event: customer_events.MemberLevelChanged) -> None:
    """customer.member.level_changed: the level the accrual multiplier uses."""
    state = await _state(session, event.member_id)
    when = _time(event, "change_time")
    if _older(when, state.level_changed_at):
        return
    state.level = event.to_level
    state.level_changed_at = when


async def members_imported(session: AsyncSession, event: customer_events.MembersImported) -> None:
    """customer.members.imported: one fast-import batch's members, handled in bulk as member_created is one by one.

    Each member gets the accounts it lacks (announced in ``ledger.accounts.opened.v1`` events of up to
    1,000 accounts, each what ``ledger.account.opened.v1`` carries for a member created alone) and,
    when the ledger has no state for it yet, a state with its level (a state whose level never
    changed takes the level too). A member already known keeps what it has, so a
    repeat changes nothing. Driver-level statements in one hop: a batch holds up to 10,000 members.
    """
    if len(event.levels) != len(event.member_ids):
        raise ValueError(f"{len(event.member_ids)} member ids but {len(event.levels)} levels")
    levels = dict(zip(event.member_ids, event.levels))
    await session.run_sync(lambda s: _import_members(s.connection(), levels))


def _import_members(conn: Connection, levels: dict[str, int]) -> None:
    ids = sorted(levels)
    have: set[tuple[str, int]] = set()
    known: dict[str, datetime | None] = {}
    for chunk in chunks(ids, CHUNK):
        have.update((m, a) for m, a in conn.execute(
            select(Account.member_id, Account.asset).where(Account.member_id.in_(chunk))).all())
        known.update((m, changed) for m, changed in conn.execute(select(
            MemberState.member_id, MemberState.level_changed_at).where(MemberState.member_id.in_(chunk))).all())
    now = utcnow()
    missing = [(m, a, 0, 0, now) for m in ids for a in ASSETS if (m, a) not in have]
    if missing:
        insert_rows(conn, table_of(Account), ("member_id", "asset", "balance", "debt", "opened_at"), missing)
        new = {(m, a) for m, a, *_ in missing}
        opened = []
        for chunk in chunks(sorted({m for m, *_ in missing}), CHUNK):
            opened += [row for row in conn.execute(select(Account.id, Account.member_id, Account.asset).where(
                Account.member_id.in_(chunk)).order_by(Account.id)).all() if (row.member_id, row.asset) in new]
        open_time = to_timestamp(now)
        add_events(conn, OutboxEvent, (events.AccountsOpened(accounts=[events.AccountOpened(
            account_id=str(row.id), member_id=row.member_id, asset=pb.Asset.Name(row.asset), open_time=open_time)
            for row in part]) for part in chunks(opened, ACCOUNTS_PER_EVENT)))
    insert_rows(conn, table_of(MemberState), ("member_id", "level", "disabled", "deleted", "virtual"),
                [(m, levels[m], False, False, False) for m in ids if m not in known])
    update_rows(conn, table_of(MemberState), ("level",), ("member_id",),
                [(levels[m], m) for m, changed in known.items() if changed is None])
