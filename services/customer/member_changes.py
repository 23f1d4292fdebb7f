"""A member's attributes changing: the one rule UpdateMember, the ledger projection (an order's buyer) and
the member import follow.

Whatever asks for the change, the same follows: ``updated_at`` moves, a changed phone re-decides the
store-member flag (of this member and of any other customer with that phone), each changed field gets
a timeline entry, and one ``MemberUpdated`` names the fields.

``change_attributes`` does all of it for one member row. ``change_attributes_staged`` does the same for
the ledger projection, which has read what it needs for a whole batch and stages its new rows. The
import writes its batches in bulk, so it takes the parts: ``changes_of`` decides what changes,
``record_changes`` writes the timeline entries and ``announce_changes`` the event (into its batch's
staging, which stands in for the session); it moves ``updated_at`` and the store-member flags of a whole
batch at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import Adds
from services.common.validation import aware
from services.customer import member_events, timeline
from services.customer.member_rows import MemberRow
from services.customer.models import Customer
from services.customer.store_members import is_store_staff_phone, refresh_store_member

# Column -> the Member message field MemberUpdated.changed_fields names it by (the others are named alike).
MEMBER_FIELDS = {"registered_at": "registration_time", "card_number": "card.card_number",
                 "card_open_time": "card.open_time", "card_open_mall_id": "card.open_mall_id",
                 "promotion_channel": "card.promotion_channel", "open_scene": "card.open_scene",
                 "card_opened": "card.opened", "card_open_channel": "card.open_channel"}


def same(old: Any, new: Any) -> bool:
    """Whether a stored value and a new one are the same (a stored time may have lost its zone)."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return aware(old) == new
    return old == new


def changes_of(current: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``values`` that differ from ``current``'s attributes (a member row, or its stored state)."""
    return {k: v for k, v in values.items() if not same(getattr(current, k), v)}


def record_changes(session: Adds, customer_id: int, changed: Mapping[str, tuple[Any, Any]], actor_id: str,
                   **detail: Any) -> None:
    """One ``attribute_changed`` timeline entry per field of ``changed`` (field -> (old, new)), with ``detail``
    beside the field and its old and new value (an order id, say)."""
    for key, (old, new) in changed.items():
        timeline.record(session, customer_id, "attribute_changed", actor_id, field=key, **detail,
                        **{"from": old, "to": new})


def announce_changes(session: Adds, member: Customer | MemberRow, fields: Iterable[str], actor_id: str) -> None:
    """The ``MemberUpdated`` of a change of ``fields`` (columns), named as the Member message names them."""
    member_events.updated(session, member, [MEMBER_FIELDS.get(k, k) for k in fields], actor_id)


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
    record_changes(session, member.id, changed, actor_id, **detail)
    announce_changes(session, member, changed, actor_id)
    return changed


def change_attributes_staged(session: Adds, member: Customer | MemberRow, values: dict[str, Any], actor_id: str,
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
    record_changes(session, member.id, changed, actor_id, **detail)
    announce_changes(session, member, changed, actor_id)
    return changed


def _set(member: Customer | MemberRow, values: Mapping[str, Any], now: datetime) -> dict[str, tuple[Any, Any]]:
    """Sets the values that differ; returns field -> (old, new), and moves ``updated_at`` if any did."""
    changed = {k: (getattr(member, k), v) for k, v in changes_of(member, values).items()}
    for key, (_, new) in changed.items():
        setattr(member, key, new)
    if changed:
        member.updated_at = now
    return changed
