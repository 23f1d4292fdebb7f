"""A member's attributes changing: the one way UpdateMember and the ledger projection (an order's buyer) change them.

Whatever asks for the change, the same follows: ``updated_at`` moves, a changed phone re-decides the
store-member flag (of this member and of any other customer with that phone), each changed field gets
a timeline entry, and one ``MemberUpdated`` names the fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer import member_events, timeline
from services.customer.models import Customer
from services.customer.store_members import is_store_staff_phone, refresh_store_member


async def change_attributes(session: AsyncSession, member: Customer, values: dict[str, Any], actor_id: str,
                            now: datetime, **detail: Any) -> dict[str, tuple[Any, Any]]:
    """Sets the ``values`` that differ from the member's and records the change; returns field -> (old, new).

    ``detail`` goes into each timeline entry beside the field and its old and new value (an order id, say).
    """
    changed = {k: (getattr(member, k), v) for k, v in values.items() if getattr(member, k) != v}
    if not changed:
        return changed
    for key, (_, new) in changed.items():
        setattr(member, key, new)
    member.updated_at = now
    await session.flush()
    if "phone" in changed:
        await refresh_store_member(session, member.phone)
        member.store_member = await is_store_staff_phone(session, member.phone)
    for key, (old, new) in changed.items():
        timeline.record(session, member.id, "attribute_changed", actor_id, field=key, **detail,
                        **{"from": old, "to": new})
    member_events.updated(session, member, changed, actor_id)
    return changed
