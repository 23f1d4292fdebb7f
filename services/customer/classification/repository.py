"""Queries over groups, tags and the customers they hold."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.classification.models import CustomerGroup, CustomerTag, Tag
from services.customer.models import Customer


def live() -> ColumnElement[bool]:
    return Customer.deleted_at.is_(None)


class ClassificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- customers

    async def live_ids(self, ids: Sequence[int]) -> set[int]:
        """The ids that name a customer (any kind) that is not deleted."""
        return set((await self.session.scalars(select(Customer.id).where(Customer.id.in_(ids), live()))).all())

    async def visible_ids(self, ids: Sequence[int], scope: ColumnElement[bool]) -> set[int]:
        return set((await self.session.scalars(select(Customer.id).where(Customer.id.in_(ids), scope))).all())

    async def live_customer(self, customer_id: int) -> Customer | None:
        return await self.session.scalar(select(Customer).where(Customer.id == customer_id, live()))

    # --- groups

    async def group(self, group_id: int) -> CustomerGroup | None:
        return await self.session.get(CustomerGroup, group_id)

    async def group_named(self, name: str) -> CustomerGroup | None:
        return await self.session.scalar(select(CustomerGroup).where(func.lower(CustomerGroup.name) == name.lower()))

    async def add_group(self, group: CustomerGroup) -> CustomerGroup:
        self.session.add(group)
        await self.session.flush()
        return group

    async def groups(self, limit: int, after_id: int) -> Sequence[CustomerGroup]:
        return (await self.session.scalars(select(CustomerGroup).where(CustomerGroup.id > after_id)
                                           .order_by(CustomerGroup.id).limit(limit))).all()

    async def group_counts(self, group_ids: Sequence[int | None], scope: ColumnElement[bool]) -> dict[int | None, int]:
        """Live customers in the caller's scope per group; ``None`` is the default group."""
        ids = [g for g in group_ids if g is not None]
        where: ColumnElement[bool] = Customer.group_id.in_(ids)
        if None in group_ids:
            where = where | Customer.group_id.is_(None)
        rows = (await self.session.execute(
            select(Customer.group_id, func.count()).where(live(), scope, where).group_by(Customer.group_id))).all()
        return {group_id: count for group_id, count in rows}

    async def customers_in_group(self, group_id: int) -> list[int]:
        return list((await self.session.scalars(
            select(Customer.id).where(Customer.group_id == group_id).order_by(Customer.id))).all())

    async def groups_of(self, ids: Sequence[int]) -> dict[int, int | None]:
        rows = (await self.session.execute(select(Customer.id, Customer.group_id).where(Customer.id.in_(ids)))).all()
        return {customer_id: group_id for customer_id, group_id in rows}

    async def set_group(self, ids: Sequence[int], group_id: int | None) -> None:
        await self.session.execute(update(Customer).where(Customer.id.in_(ids)).values(group_id=group_id)
                                   .execution_options(synchronize_session="fetch"))

    # --- tags

    async def tag(self, tag_id: int) -> Tag | None:
        return await self.session.get(Tag, tag_id)

    async def tag_named(self, name: str) -> Tag | None:
        return await self.session.scalar(select(Tag).where(func.lower(Tag.name) == name.lower()))

    async def add_tag(self, tag: Tag) -> Tag:
        self.session.add(tag)
        await self.session.flush()
        return tag

    async def tags_by_id(self, ids: Sequence[int]) -> dict[int, Tag]:
        return {t.id: t for t in (await self.session.scalars(select(Tag).where(Tag.id.in_(ids)))).all()}

    async def tags(self, limit: int, after: tuple[bool, int] | None) -> Sequence[Tag]:
        """Predefined tags first, then custom ones, each in creation order."""
        query = select(Tag)
        if after is not None:
            predefined, last_id = after
            query = query.where((Tag.predefined.is_(False)) | (Tag.id > last_id) if predefined
                                else Tag.predefined.is_(False) & (Tag.id > last_id))
        return (await self.session.scalars(query.order_by(Tag.predefined.desc(), Tag.id).limit(limit))).all()

    async def tag_counts(self, tag_ids: Sequence[int], scope: ColumnElement[bool]) -> dict[int, int]:
        rows = (await self.session.execute(
            select(CustomerTag.tag_id, func.count()).join(Customer, Customer.id == CustomerTag.customer_id)
            .where(CustomerTag.tag_id.in_(tag_ids), live(), scope).group_by(CustomerTag.tag_id))).all()
        return {tag_id: count for tag_id, count in rows}

    async def customer_tags(self, customer_id: int, limit: int, after: int | None) -> Sequence[Tag]:
        """The customer's tags in tag order (the order the tags were created)."""
        query = (select(Tag).join(CustomerTag, CustomerTag.tag_id == Tag.id)
                 .where(CustomerTag.customer_id == customer_id))
        if after is not None:
            query = query.where(Tag.id > after)
        return (await self.session.scalars(query.order_by(Tag.id).limit(limit))).all()

    async def delete(self, row: CustomerGroup | Tag) -> None:
        await self.session.delete(row)
        await self.session.flush()
