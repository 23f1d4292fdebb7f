"""Queries of staff sign-in."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.organization.models import Staff, StaffMall
from services.customer.sessions.models import SignInThrottle, StaffCredential, StaffSession


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def staff(self, staff_id: int) -> Staff | None:
        return await self.session.get(Staff, staff_id)

    async def staff_by_phone(self, phone: str) -> Staff | None:
        return (await self.session.scalars(select(Staff).where(Staff.phone == phone))).first()

    async def mall_ids(self, staff_id: int) -> list[str]:
        rows = await self.session.scalars(select(StaffMall.mall_id).where(StaffMall.staff_id == staff_id))
        return sorted(str(m) for m in rows)

    async def credential(self, staff_id: int) -> StaffCredential | None:
        return await self.session.get(StaffCredential, staff_id)

    async def session_row(self, session_id: int) -> StaffSession | None:
        return await self.session.get(StaffSession, session_id)

    async def revoke_family(self, family_id: int, when: object) -> None:
        await self.session.execute(update(StaffSession).where(
            StaffSession.family_id == family_id, StaffSession.revoked_at.is_(None)).values(revoked_at=when))

    async def revoke_staff(self, staff_id: int, when: object) -> None:
        await self.session.execute(update(StaffSession).where(
            StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None)).values(revoked_at=when))

    async def throttles(self, keys: Sequence[str]) -> dict[str, SignInThrottle]:
        rows = await self.session.scalars(select(SignInThrottle).where(SignInThrottle.key.in_(list(keys))))
        return {row.key: row for row in rows}

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def delete(self, row: object) -> None:
        await self.session.delete(row)
