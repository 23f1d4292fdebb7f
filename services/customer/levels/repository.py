"""Queries over level definitions and level changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.levels.models import Level, LevelChange
from services.customer.models import Customer


@dataclass(frozen=True)
class ChangeFilter:
    """Which level changes a list or a download holds (all filters optional)."""

    member_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    kind: int = 0
    to_level: int = 0


class LevelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(Level)) or 0

    async def level(self, number: int) -> Level | None:
        return await self.session.get(Level, number)

    async def named(self, name: str) -> int | None:
        """The number of the level called ``name``."""
        return await self.session.scalar(select(Level.number).where(Level.name == name))

    async def add(self, level: Level) -> None:
        self.session.add(level)
        await self.session.flush()

    async def delete(self, level: Level) -> None:
        await self.session.delete(level)

    async def holders(self, number: int) -> int:
        """How many live members hold level ``number``."""
        return await self.session.scalar(select(func.count()).select_from(Customer).where(
            Customer.level == number, Customer.deleted_at.is_(None))) or 0

    async def member_counts(self) -> dict[int, int]:
        """Level number -> how many live members hold it."""
        return dict((await self.session.execute(
            select(Customer.level, func.count()).where(Customer.deleted_at.is_(None), Customer.level > 0)
            .group_by(Customer.level))).all())

    @staticmethod
    def _changes(f: ChangeFilter, scope: ColumnElement[bool]) -> Select[LevelChange]:
        query = select(LevelChange).join(Customer, Customer.id == LevelChange.customer_id).where(scope)
        if f.member_id is not None:
            query = query.where(LevelChange.customer_id == f.member_id)
        if f.start:
            query = query.where(LevelChange.created_at >= f.start)
        if f.end:
            query = query.where(LevelChange.created_at <= f.end)
        if f.kind:
            query = query.where(LevelChange.kind == f.kind)
        if f.to_level:
            query = query.where(LevelChange.to_level == f.to_level)
        return query

    async def changes(self, f: ChangeFilter, scope: ColumnElement[bool], limit: int,
                      before: int | None = None) -> Sequence[LevelChange]:
        """Up to ``limit`` changes matching ``f`` within ``scope`` (a WHERE on Customer), newest first."""
        query = self._changes(f, scope)
        if before is not None:
            query = query.where(LevelChange.id < before)
        return (await self.session.scalars(query.order_by(LevelChange.id.desc()).limit(limit))).all()
