"""Queries over members. Servicers reach the database only through here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.models import Member


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: int) -> Member | None:
        return await self.session.get(Member, member_id)

    async def id_by_phone(self, phone: str) -> int | None:
        return await self.session.scalar(select(Member.id).where(Member.phone == phone))

    async def id_by_email(self, email: str) -> int | None:
        return await self.session.scalar(select(Member.id).where(Member.email == email))

    async def add(self, member: Member) -> Member:
        self.session.add(member)
        await self.session.flush()
        return member

    async def page(self, limit: int, before_id: int | None) -> Sequence[Member]:
        """Newest first, keyset-paged on id."""
        query = select(Member).order_by(Member.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(Member.id < before_id)
        return (await self.session.scalars(query)).all()
