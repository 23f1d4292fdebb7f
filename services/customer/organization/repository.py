"""Queries over malls, stores and staff."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.organization.models import Mall, Staff, StaffMall, Store


class OrganizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: Mall | Store | Staff) -> None:
        self.session.add(row)
        await self.session.flush()

    async def mall(self, mall_id: int) -> Mall | None:
        return await self.session.get(Mall, mall_id)

    async def mall_by_name(self, name: str) -> Mall | None:
        return await self.session.scalar(select(Mall).where(Mall.name == name))

    async def malls(self, limit: int, after_id: int) -> Sequence[Mall]:
        return (await self.session.scalars(select(Mall).where(Mall.id > after_id).order_by(Mall.id)
                                           .limit(limit))).all()

    async def store(self, store_id: int) -> Store | None:
        return await self.session.get(Store, store_id)

    async def store_by_name(self, mall_id: int, name: str) -> Store | None:
        return await self.session.scalar(select(Store).where(Store.mall_id == mall_id, Store.name == name))

    async def stores(self, limit: int, after_id: int, *, mall_id: int | None, category: str, business_format: str,
                     floor: str, tag: str, brand: str = "") -> Sequence[Store]:
        query = select(Store).where(Store.id > after_id).order_by(Store.id).limit(limit)
        if mall_id is not None:
            query = query.where(Store.mall_id == mall_id)
        for column, value in ((Store.category, category), (Store.business_format, business_format),
                              (Store.floor, floor), (Store.brand, brand)):
            if value:
                query = query.where(column == value)
        if tag:
            query = query.where(("," + Store.tags + ",").contains(f",{tag},"))
        return (await self.session.scalars(query)).all()

    async def staff(self, staff_id: int) -> Staff | None:
        return await self.session.get(Staff, staff_id)

    async def staff_by_phone(self, phone: str) -> Staff | None:
        return await self.session.scalar(select(Staff).where(Staff.phone == phone))

    async def staff_page(self, limit: int, after_id: int, *, role: int, mall_id: int | None) -> Sequence[Staff]:
        query = select(Staff).where(Staff.id > after_id).order_by(Staff.id).limit(limit)
        if role:
            query = query.where(Staff.role == role)
        if mall_id is not None:
            query = query.where(Staff.id.in_(select(StaffMall.staff_id).where(StaffMall.mall_id == mall_id)))
        return (await self.session.scalars(query)).all()

    async def staff_malls(self, staff_ids: Sequence[int]) -> dict[int, list[int]]:
        rows = (await self.session.execute(select(StaffMall.staff_id, StaffMall.mall_id)
                                           .where(StaffMall.staff_id.in_(staff_ids))
                                           .order_by(StaffMall.mall_id))).all()
        out: dict[int, list[int]] = {}
        for staff_id, mall_id in rows:
            out.setdefault(staff_id, []).append(mall_id)
        return out

    async def set_staff_malls(self, staff_id: int, mall_ids: Sequence[int]) -> None:
        await self.session.execute(delete(StaffMall).where(StaffMall.staff_id == staff_id))
        self.session.add_all(StaffMall(staff_id=staff_id, mall_id=m) for m in sorted(set(mall_ids)))
        await self.session.flush()
