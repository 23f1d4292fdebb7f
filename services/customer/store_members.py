"""The store-member flag: a member is a store member exactly when their phone belongs to active store staff.

Staff changes (organization) and member changes (members, the ledger projection) both keep it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer import member_events
from services.customer.models import Customer
from services.customer.organization.models import Staff

STORE_STAFF = 4  # crowdpack.customer.v1.STAFF_ROLE_STORE_STAFF


async def is_store_staff_phone(session: AsyncSession, phone: str | None) -> bool:
    if not phone:
        return False
    found = await session.scalar(select(Staff.id).where(
        Staff.phone == phone, Staff.role == STORE_STAFF, Staff.disabled.is_(False)).limit(1))
    return found is not None


async def store_staff_phones(session: AsyncSession) -> set[str]:
    """Every phone of active store staff (an import decides many members' flags at once)."""
    phones = (await session.scalars(select(Staff.phone).where(
        Staff.role == STORE_STAFF, Staff.disabled.is_(False), Staff.phone.is_not(None)))).all()
    return {phone for phone in phones if phone is not None}


async def refresh_store_member(session: AsyncSession, phone: str | None) -> None:
    """Keeps ``customer.store_member`` true exactly when the phone belongs to active store staff."""
    if not phone:
        return
    flag = await is_store_staff_phone(session, phone)
    changed = (await session.scalars(select(Customer).where(
        Customer.phone == phone, Customer.store_member.is_not(flag)))).all()
    for customer in changed:
        customer.store_member = flag
        await session.flush()
        member_events.updated(session, customer, ["store_member"], "system")
