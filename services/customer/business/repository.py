"""Queries over business customers: lookups, the searched and sorted list, statistics, contacts, transfers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.common.db import rowcount
from services.common.search import contains_pattern
from services.customer.business.models import (
    APPLICATION_PENDING,
    KIND_BUSINESS,
    BusinessProfile,
    Contact,
    FollowUp,
    OwnershipTransfer,
    TransferApplication,
)
from services.customer.classification.models import CustomerGroup, CustomerTag, Tag
from services.customer.contacts_held import holder_of
from services.customer.models import Customer

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The sort key of each order (the customer id breaks ties). A customer never followed up sorts as
# if followed up at the epoch: first when ascending, last when descending.
ORDER_KEYS: dict[int, Any] = {
    pb.BUSINESS_CUSTOMER_ORDER_BY_UNSPECIFIED: Customer.created_at,
    pb.BUSINESS_CUSTOMER_ORDER_BY_CREATE_TIME: Customer.created_at,
    pb.BUSINESS_CUSTOMER_ORDER_BY_LAST_FOLLOW_UP_TIME: func.coalesce(BusinessProfile.last_follow_up_at, EPOCH),
}


@dataclass(frozen=True)
class BusinessRow:
    customer: Customer
    profile: BusinessProfile


def live_business() -> ColumnElement[bool]:
    return and_(Customer.kind == KIND_BUSINESS, Customer.deleted_at.is_(None))


def like_pattern(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere, with LIKE's wildcards taken literally (escape ``\\``)."""
    return contains_pattern(term)


def filter_clauses(f: pb.BusinessCustomerFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a BusinessCustomerFilter (already validated)."""
    clauses: list[ColumnElement[bool]] = []
    term = f.search.strip()
    if term:
        like = like_pattern(term)
        clauses.append(or_(*[column.ilike(like, escape="\\") for column in (
            Customer.name, BusinessProfile.code, BusinessProfile.short_name, Customer.phone, Customer.email)]))
    if f.statuses:
        clauses.append(BusinessProfile.status.in_(list(f.statuses)))
    if f.grades:
        clauses.append(BusinessProfile.grade.in_(list(f.grades)))
    if f.industries:
        clauses.append(BusinessProfile.industry.in_([i.strip() for i in f.industries]))
    if f.owner_staff_ids:
        clauses.append(BusinessProfile.owner_staff_id.in_(list(f.owner_staff_ids)))
    if f.tag_ids:
        clauses.append(Customer.id.in_(select(CustomerTag.customer_id).where(
            CustomerTag.tag_id.in_([int(t) for t in f.tag_ids]))))
    if f.group_ids:
        ids = [int(g) for g in f.group_ids if g != "default"]
        group = Customer.group_id.in_(ids)
        clauses.append(or_(group, Customer.group_id.is_(None)) if "default" in f.group_ids else group)
    return clauses


class BusinessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- customers

    async def get(self, customer_id: int, *, lock: bool = False) -> BusinessRow | None:
        """A live (not deleted) business customer; ``lock`` holds its rows until the transaction ends
        (PostgreSQL; SQLite writers are serialised anyway), so read-modify-writes such as the grade do not race."""
        query = (select(Customer, BusinessProfile).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
                 .where(Customer.id == customer_id, live_business()))
        row = (await self.session.execute(query.with_for_update() if lock else query)).first()
        return BusinessRow(row[0], row[1]) if row else None

    async def by_code(self, code: str) -> BusinessRow | None:
        """The live business customer with this code, locked."""
        row = (await self.session.execute(
            select(Customer, BusinessProfile).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
            .where(BusinessProfile.code == code, live_business()).with_for_update())).first()
        return BusinessRow(row[0], row[1]) if row else None

    async def named(self, name: str, limit: int = 2) -> list[BusinessRow]:
        """Live business customers with exactly this name (up to ``limit``), locked."""
        rows = (await self.session.execute(
            select(Customer, BusinessProfile).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
            .where(Customer.name == name, live_business()).order_by(Customer.id).limit(limit)
            .with_for_update())).all()
        return [BusinessRow(c, p) for c, p in rows]

    async def add(self, customer: Customer, profile: BusinessProfile) -> BusinessRow:
        self.session.add(customer)
        await self.session.flush()
        profile.customer_id = customer.id
        self.session.add(profile)
        await self.session.flush()
        return BusinessRow(customer, profile)

    async def holder_by(self, column: Any, value: str) -> tuple[int, bool] | None:
        """The customer (of either kind) holding ``value`` in ``column`` and whether they are deleted."""
        return await holder_of(self.session, column, value)

    async def group_exists(self, group_id: int) -> bool:
        return await self.session.get(CustomerGroup, group_id) is not None

    async def page(self, *, where: list[ColumnElement[bool]], order_by: int, ascending: bool, limit: int,
                   after: tuple[datetime, int] | None) -> list[tuple[BusinessRow, datetime]]:
        key = ORDER_KEYS[order_by]
        query = (select(Customer, BusinessProfile, key.label("sort_key"))
                 .join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
                 .where(live_business(), *where))
        if after is not None:
            value, last_id = after
            if ascending:
                query = query.where(or_(key > value, and_(key == value, Customer.id > last_id)))
            else:
                query = query.where(or_(key < value, and_(key == value, Customer.id < last_id)))
        query = query.order_by(*[c.asc() if ascending else c.desc() for c in (key, Customer.id)]).limit(limit)
        rows = (await self.session.execute(query)).all()
        return [(BusinessRow(c, p), sort_key) for c, p, sort_key in rows]

    async def count(self, where: list[ColumnElement[bool]]) -> int:
        return await self.session.scalar(
            select(func.count()).select_from(Customer).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
            .where(live_business(), *where)) or 0  # a count is never NULL

    async def contact_counts(self, ids: Sequence[int]) -> dict[int, int]:
        rows = (await self.session.execute(
            select(Contact.customer_id, func.count()).where(Contact.customer_id.in_(ids))
            .group_by(Contact.customer_id))).all()
        return {customer_id: count for customer_id, count in rows}

    async def tags_of(self, ids: Sequence[int]) -> dict[int, list[Tag]]:
        rows = (await self.session.execute(
            select(CustomerTag.customer_id, Tag).join(Tag, Tag.id == CustomerTag.tag_id)
            .where(CustomerTag.customer_id.in_(ids)).order_by(CustomerTag.created_at, Tag.id))).all()
        out: dict[int, list[Tag]] = {}
        for customer_id, tag in rows:
            out.setdefault(customer_id, []).append(tag)
        return out

    async def statistics_rows(self, where: list[ColumnElement[bool]]) -> list[tuple[int, int, int, int, int]]:
        """(status, grade, customers, revenue sum, years sum) per status and grade."""
        rows = (await self.session.execute(
            select(BusinessProfile.status, BusinessProfile.grade, func.count(),
                   func.coalesce(func.sum(BusinessProfile.annual_revenue_fen), 0),
                   func.coalesce(func.sum(BusinessProfile.cooperation_years), 0))
            .select_from(Customer).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
            .where(live_business(), *where)
            .group_by(BusinessProfile.status, BusinessProfile.grade))).all()
        return [(int(s), int(g), int(n), int(revenue), int(years)) for s, g, n, revenue, years in rows]

    # --- ownership

    async def owned_by(self, staff_id: str) -> list[BusinessRow]:
        """Every live business customer of one owner, locked for a transfer."""
        rows = (await self.session.execute(
            select(Customer, BusinessProfile).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
            .where(live_business(), BusinessProfile.owner_staff_id == staff_id).order_by(Customer.id)
            .with_for_update())).all()
        return [BusinessRow(c, p) for c, p in rows]

    async def rows(self, ids: Sequence[int]) -> dict[int, BusinessRow]:
        """The live business customers among ``ids``, locked for a transfer."""
        rows = (await self.session.execute(
            select(Customer, BusinessProfile).join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
            .where(live_business(), Customer.id.in_(ids)).order_by(Customer.id).with_for_update())).all()
        return {c.id: BusinessRow(c, p) for c, p in rows}

    async def transfers(self, customer_id: int, limit: int, before: int | None) -> Sequence[OwnershipTransfer]:
        query = (select(OwnershipTransfer).where(OwnershipTransfer.customer_id == customer_id)
                 .order_by(OwnershipTransfer.id.desc()).limit(limit))
        if before is not None:
            query = query.where(OwnershipTransfer.id < before)
        return (await self.session.scalars(query)).all()

    # --- transfer applications

    async def application(self, application_id: int, *, lock: bool = False) -> TransferApplication | None:
        query = select(TransferApplication).where(TransferApplication.id == application_id)
        return await self.session.scalar(query.with_for_update() if lock else query)

    async def pending_application(self, customer_id: int) -> TransferApplication | None:
        return await self.session.scalar(select(TransferApplication).where(
            TransferApplication.customer_id == customer_id, TransferApplication.state == APPLICATION_PENDING))

    async def pending_applications(self, customer_ids: Sequence[int]) -> Sequence[TransferApplication]:
        """The pending applications of these customers, locked to be decided."""
        return (await self.session.scalars(select(TransferApplication).where(
            TransferApplication.customer_id.in_(customer_ids), TransferApplication.state == APPLICATION_PENDING)
            .order_by(TransferApplication.id).with_for_update())).all()

    async def add_application(self, application: TransferApplication) -> TransferApplication:
        self.session.add(application)
        await self.session.flush()
        return application

    async def applications(self, where: list[ColumnElement[bool]], limit: int,
                           before: int | None) -> Sequence[TransferApplication]:
        """Newest first."""
        query = select(TransferApplication).where(*where)
        if before is not None:
            query = query.where(TransferApplication.id < before)
        return (await self.session.scalars(query.order_by(TransferApplication.id.desc()).limit(limit))).all()

    # --- follow-ups

    async def add_follow_up(self, follow_up: FollowUp) -> FollowUp:
        self.session.add(follow_up)
        await self.session.flush()
        return follow_up

    async def follow_ups(self, customer_id: int, limit: int, after: tuple[datetime, int] | None) -> Sequence[FollowUp]:
        """Latest follow-up time first (the id breaks ties, newest first)."""
        query = select(FollowUp).where(FollowUp.customer_id == customer_id)
        if after is not None:
            when, last_id = after
            query = query.where(or_(FollowUp.followed_up_at < when,
                                    and_(FollowUp.followed_up_at == when, FollowUp.id < last_id)))
        query = query.order_by(FollowUp.followed_up_at.desc(), FollowUp.id.desc()).limit(limit)
        return (await self.session.scalars(query)).all()

    # --- contacts

    async def contact(self, contact_id: int) -> Contact | None:
        """A contact of a live business customer."""
        return await self.session.scalar(
            select(Contact).join(Customer, Customer.id == Contact.customer_id)
            .where(Contact.id == contact_id, live_business()))

    async def add_contact(self, contact: Contact) -> Contact:
        self.session.add(contact)
        await self.session.flush()
        return contact

    async def unset_primary(self, customer_id: int, except_id: int | None = None) -> None:
        """Clears the customer's primary contact; runs before a new one is written (the unique index)."""
        query = update(Contact).where(Contact.customer_id == customer_id, Contact.is_primary.is_(True))
        if except_id is not None:
            query = query.where(Contact.id != except_id)
        await self.session.execute(query.values(is_primary=False).execution_options(synchronize_session="fetch"))

    async def contacts(self, customer_id: int, limit: int, after: tuple[bool, int] | None) -> Sequence[Contact]:
        """Primary first, then newest first (ids grow with creation)."""
        query = select(Contact).where(Contact.customer_id == customer_id)
        if after is not None:
            primary, last_id = after
            query = query.where(or_(Contact.is_primary.is_(False), Contact.id < last_id) if primary
                                else and_(Contact.is_primary.is_(False), Contact.id < last_id))
        query = query.order_by(Contact.is_primary.desc(), Contact.id.desc()).limit(limit)
        return (await self.session.scalars(query)).all()

    async def search_contacts(self, query_text: str, scope: ColumnElement[bool], limit: int,
                              before: int | None) -> list[tuple[Contact, str]]:
        query = (select(Contact, Customer.name).join(Customer, Customer.id == Contact.customer_id)
                 .join(BusinessProfile, BusinessProfile.customer_id == Customer.id)
                 .where(live_business(), scope))
        term = query_text.strip()
        if term:
            like = like_pattern(term)
            query = query.where(or_(Contact.name.ilike(like, escape="\\"), Contact.mobile.ilike(like, escape="\\"),
                                    Contact.email.ilike(like, escape="\\")))
        if before is not None:
            query = query.where(Contact.id < before)
        rows = (await self.session.execute(query.order_by(Contact.id.desc()).limit(limit))).all()
        return [(contact, name) for contact, name in rows]

    async def delete_contacts(self, customer_id: int) -> int:
        result = await self.session.execute(delete(Contact).where(Contact.customer_id == customer_id))
        return rowcount(result) or 0

    async def delete_contact(self, contact: Contact) -> None:
        await self.session.delete(contact)
        await self.session.flush()
