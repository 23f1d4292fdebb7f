"""Queries over crowd categories and packages."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.clock import utcnow
from services.customer.crowds.models import CrowdCategory, CrowdPackage
from services.customer.organization.models import Mall

UNCATEGORISED = "未分类"  # the documents' word for the default crowd category


class CrowdRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def default_category(self, mall_id: int) -> CrowdCategory:
        """The mall's "uncategorised" category, created on first use."""
        found = await self.session.scalar(select(CrowdCategory).where(
            CrowdCategory.mall_id == mall_id, CrowdCategory.is_default.is_(True)))
        if found is None:
            found = CrowdCategory(mall_id=mall_id, name=UNCATEGORISED, position=0, is_default=True,
                                  created_at=utcnow())
            self.session.add(found)
            await self.session.flush()
        return found

    async def categories(self, mall_id: int) -> Sequence[CrowdCategory]:
        await self.default_category(mall_id)
        return (await self.session.scalars(select(CrowdCategory).where(CrowdCategory.mall_id == mall_id)
                                           .order_by(CrowdCategory.position, CrowdCategory.id))).all()

    async def category(self, category_id: int) -> CrowdCategory | None:
        return await self.session.get(CrowdCategory, category_id)

    async def category_named(self, mall_id: int, name: str) -> CrowdCategory | None:
        return await self.session.scalar(select(CrowdCategory).where(CrowdCategory.mall_id == mall_id,
                                                                     CrowdCategory.name == name))

    async def next_position(self, mall_id: int) -> int:
        return (await self.session.scalar(select(func.max(CrowdCategory.position))
                                          .where(CrowdCategory.mall_id == mall_id)) or 0) + 1

    async def package_counts(self, category_ids: Sequence[int]) -> dict[int, int]:
        rows = (await self.session.execute(select(CrowdPackage.category_id, func.count())
                                           .where(CrowdPackage.category_id.in_(category_ids))
                                           .group_by(CrowdPackage.category_id))).all()
        return dict(rows)

    async def move_packages(self, from_category: int, to_category: int) -> None:
        await self.session.execute(update(CrowdPackage).where(CrowdPackage.category_id == from_category)
                                   .values(category_id=to_category))

    async def package(self, package_id: int) -> CrowdPackage | None:
        return await self.session.get(CrowdPackage, package_id)

    async def package_named(self, mall_id: int, name: str) -> CrowdPackage | None:
        return await self.session.scalar(select(CrowdPackage).where(CrowdPackage.mall_id == mall_id,
                                                                    CrowdPackage.name == name))

    async def packages(self, limit: int, after_id: int, mall_id: int | None,
                       category_id: int | None) -> Sequence[CrowdPackage]:
        query = select(CrowdPackage).where(CrowdPackage.id > after_id).order_by(CrowdPackage.id).limit(limit)
        if mall_id is not None:
            query = query.where(CrowdPackage.mall_id == mall_id)
        if category_id is not None:
            query = query.where(CrowdPackage.category_id == category_id)
        return (await self.session.scalars(query)).all()

    async def mall_exists(self, mall_id: int) -> bool:
        return await self.session.get(Mall, mall_id) is not None

    async def add(self, row: CrowdCategory | CrowdPackage) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete(self, row: CrowdCategory | CrowdPackage) -> None:
        await self.session.delete(row)
