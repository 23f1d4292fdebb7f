"""Queries over the whitelist."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.alert.models import WhitelistEntry


class WhitelistRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: str) -> WhitelistEntry | None:
        return await self.session.get(WhitelistEntry, member_id)

    async def add(self, entry: WhitelistEntry) -> WhitelistEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def remove(self, member_id: str) -> None:
        await self.session.execute(delete(WhitelistEntry).where(WhitelistEntry.member_id == member_id))

    async def page(self, limit: int, after: tuple[datetime, str] | None) -> Sequence[WhitelistEntry]:
        """Newest first; keyset on (created_at, member_id)."""
        query = select(WhitelistEntry).order_by(WhitelistEntry.created_at.desc(), WhitelistEntry.member_id.desc())
        if after is not None:
            query = query.where(tuple_(WhitelistEntry.created_at, WhitelistEntry.member_id) < after)
        return (await self.session.scalars(query.limit(limit))).all()
