"""What a crowd definition may refer to, read fresh for each evaluation (small tables)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import crowd_pb2
from services.customer.classification.models import CustomerGroup, Tag
from services.customer.crowds.translate import Catalogue, Translation, Translator
from services.customer.levels.models import Level
from services.customer.organization.models import Mall, Store


async def load_catalogue(session: AsyncSession) -> Catalogue:
    stores = {s.id: (s.mall_id, s.category, s.business_format, s.floor, frozenset(t for t in s.tags.split(",") if t))
              for s in (await session.scalars(select(Store))).all()}
    return Catalogue(
        stores=stores, malls=set((await session.scalars(select(Mall.id))).all()),
        tags=set((await session.scalars(select(Tag.id))).all()),
        groups=set((await session.scalars(select(CustomerGroup.id))).all()),
        levels=set((await session.scalars(select(Level.number))).all()))


async def mall_today(session: AsyncSession, mall_id: int, now: datetime) -> date:
    tz = await session.scalar(select(Mall.timezone).where(Mall.id == mall_id))
    return now.astimezone(ZoneInfo(tz or "Asia/Shanghai")).date()


async def translate(session: AsyncSession, mall_id: int, definition: crowd_pb2.CrowdDefinition, now: datetime,
                    where: str = "definition") -> Translation:
    catalogue = await load_catalogue(session)
    return Translator(catalogue, await mall_today(session, mall_id, now)).translate(definition, where)
