"""The ledger's view of members, kept from the customer service's events.

``member_state`` holds what the ledger needs to decide: the member's level (the accrual
multiplier) and whether the member is disabled (no points use, no member benefits). Each
handler runs in the consumer's transaction with its dedupe record; an event older than what
is stored (a redelivery after a newer one) changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.validation import aware
from services.ledger.accounts import open_member_accounts
from services.ledger.models import MemberState


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


async def member_created(session: AsyncSession, event: Message) -> None:
    """customer.member.created: the member's three accounts, and the level they start at."""
    await open_member_accounts(session, event)
    state = await _state(session, event.member_id)
    if state.level_changed_at is None:
        state.level = event.level


async def member_status_changed(session: AsyncSession, event: Message) -> None:
    """customer.member.status_changed: carries the whole new status."""
    state = await _state(session, event.member_id)
    when = _time(event, "change_time")
    if _older(when, state.status_changed_at):
        return
    state.disabled, state.deleted, state.virtual = event.disabled, event.deleted, event.virtual
    state.status_changed_at = when


async def member_level_changed(session: AsyncSession, event: Message) -> None:
    """customer.member.level_changed: the level the accrual multiplier uses."""
    state = await _state(session, event.member_id)
    when = _time(event, "change_time")
    if _older(when, state.level_changed_at):
        return
    state.level = event.to_level
    state.level_changed_at = when
