"""A member's attributes changing: the one way UpdateMember and the ledger projection (an order's buyer) change them.

Whatever asks for the change, the same follows: ``updated_at`` moves, a changed phone re-decides the
store-member flag (of this member and of any other customer with that phone), each changed field gets
a timeline entry, and one ``MemberUpdated`` names the fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import Adds
from services.customer import member_events, timeline
from services.customer.models import Customer
from services.customer.store_members import is_store_staff_phone, refresh_store_member


async def change_attributes(session: AsyncSession, member: Customer, values: dict[str, Any], actor_id: str,
                            now: datetime, **detail: Any) -> dict[str, tuple[Any, Any]]:
    """Sets the ``values`` that differ from the member's and records the change; returns field -> (old, new).

    ``detail`` goes into each timeline entry beside the field and its old and new value (an order id, say).
    """
    changed = _set(member, values, now)
    if not changed:
        return changed
    await session.flush()
    if "phone" in changed:
        await refresh_store_member(session, member.phone)
        member.store_member = await is_store_staff_phone(session, member.phone)
    _record(session, member, changed, actor_id, detail)
    return changed


def change_attributes_staged(session: Adds, member: Customer, values: dict[str, Any], actor_id: str,
                             now: datetime, staff_phones: set[str], **detail: Any) -> dict[str, tuple[Any, Any]]:
    """``change_attributes`` for a caller that knows no other customer holds a new phone (the ledger projection
    checks it) and has read which of its new phones belong to active store staff (``staff_phones``): the
    store-member flag is decided from them, nothing is read or flushed, and the outcome is the same (only this
    member can hold the phone, so only its flag can move, announced as ``refresh_store_member`` does).
    """
    changed = _set(member, values, now)
    if not changed:
        return changed
    if "phone" in changed:
        flag = bool(member.phone) and member.phone in staff_phones
        if member.store_member != flag:
            member.store_member = flag
            member_events.updated(session, member, ["store_member"], "system")
    _record(session, member, changed, actor_id, detail)
    return changed


def _set(member: Customer, values: dict[str, Any], now: datetime) -> dict[str, tuple[Any, Any]]:
    changed = {k: (getattr(member, k), v) for k, v in values.items() if getattr(member, k) != v}
    for key, (_, new) in changed.items():
        setattr(member, key, new)
    if changed:
        member.updated_at = now
    return changed


def _record(session: Adds, member: Customer, changed: dict[str, tuple[Any, Any]], actor_id: str,
            detail: dict[str, Any]) -> None:
    for key, (old, new) in changed.items():
        timeline.record(session, member.id, "attribute_changed", actor_id, field=key, **detail,
                        **{"from": old, "to": new})
    member_events.updated(session, member, changed, actor_id)
