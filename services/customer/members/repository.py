"""Queries over members: lookups, the filtered and sorted list, and what a Member view joins in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    Row,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from services.common.errors import InvalidArgument
from services.common.mapped import table_of
from services.common.search import LIKE_ESCAPE, contains_pattern
from services.common.validation import aware, known_enum, parse_int_id
from services.customer.business.models import Contact
from services.customer.classification.models import CustomerGroup, CustomerTag, Tag
from services.customer.contacts_held import holder_of
from services.customer.members.convert import MEMBER_COLUMNS, STATS_SHOWN
from services.customer.models import Customer, CustomerInteraction, CustomerStats
from services.customer.organization.models import Mall
from services.customer.scope import EVERYONE
from services.customer.stats import empty_stats

MEMBER = 1  # crowdpack.customer.v1.CUSTOMER_KIND_MEMBER
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What each order sorts on (None: the id, i.e. the create time). A member who never spent sorts
# as if their last spend were the epoch.
ORDER_KEYS: dict[int, Any] = {
    pb.MEMBER_ORDER_BY_UNSPECIFIED: None,
    pb.MEMBER_ORDER_BY_CREATE_TIME: None,
    pb.MEMBER_ORDER_BY_POINTS_BALANCE: CustomerStats.points_balance,
    pb.MEMBER_ORDER_BY_SPEND_TOTAL: CustomerStats.spend_total_fen,
    pb.MEMBER_ORDER_BY_SPEND_COUNT: CustomerStats.spend_count,
    pb.MEMBER_ORDER_BY_LAST_SPEND_TIME: func.coalesce(CustomerStats.last_spend_at, EPOCH),
    pb.MEMBER_ORDER_BY_ONLINE_COUNT: CustomerStats.online_count,
    pb.MEMBER_ORDER_BY_ONLINE_TOTAL: CustomerStats.online_total_fen,
    pb.MEMBER_ORDER_BY_ONLINE_LAST_TIME: func.coalesce(CustomerStats.online_last_at, EPOCH),
    pb.MEMBER_ORDER_BY_OFFLINE_COUNT: CustomerStats.offline_count,
    pb.MEMBER_ORDER_BY_OFFLINE_TOTAL: CustomerStats.offline_total_fen,
    pb.MEMBER_ORDER_BY_OFFLINE_LAST_TIME: func.coalesce(CustomerStats.offline_last_at, EPOCH),
}
# The indexed column behind each key: ``customer_stats`` has a (column, customer_id) index for each.
SORT_COLUMNS: dict[int, Any] = {
    pb.MEMBER_ORDER_BY_POINTS_BALANCE: CustomerStats.points_balance,
    pb.MEMBER_ORDER_BY_SPEND_TOTAL: CustomerStats.spend_total_fen,
    pb.MEMBER_ORDER_BY_SPEND_COUNT: CustomerStats.spend_count,
    pb.MEMBER_ORDER_BY_LAST_SPEND_TIME: CustomerStats.last_spend_at,
    pb.MEMBER_ORDER_BY_ONLINE_COUNT: CustomerStats.online_count,
    pb.MEMBER_ORDER_BY_ONLINE_TOTAL: CustomerStats.online_total_fen,
    pb.MEMBER_ORDER_BY_ONLINE_LAST_TIME: CustomerStats.online_last_at,
    pb.MEMBER_ORDER_BY_OFFLINE_COUNT: CustomerStats.offline_count,
    pb.MEMBER_ORDER_BY_OFFLINE_TOTAL: CustomerStats.offline_total_fen,
    pb.MEMBER_ORDER_BY_OFFLINE_LAST_TIME: CustomerStats.offline_last_at,
}
# The orders by a time, which a member without one (NULL) sorts as if it were the epoch.
TIME_ORDERS = frozenset({pb.MEMBER_ORDER_BY_LAST_SPEND_TIME, pb.MEMBER_ORDER_BY_ONLINE_LAST_TIME,
                         pb.MEMBER_ORDER_BY_OFFLINE_LAST_TIME})
# How many members, in sort order, a page looks at before it sorts the filtered members instead.
WALK_WINDOWS = (2_000, 20_000)
# What a Member view reads of a member's customer and customer_stats rows, as plain columns (in the order
# ``convert.member_from_row`` reads them): no mapped object is loaded.
_customer, _stats = table_of(Customer), table_of(CustomerStats)
VIEW_COLUMNS = (*(_customer.c[name] for name in MEMBER_COLUMNS), *(_stats.c[name] for name in STATS_SHOWN))
# The start of a page's query, built once (selecting fifty columns costs as much again as the rest of it).
_PAGE_OF_VIEWS: Select[Any] = select(*VIEW_COLUMNS).select_from(Customer)
_PAGE_OF_CUSTOMERS: Select[Any] = select(Customer).select_from(Customer)


_LIVE_MEMBER = and_(Customer.kind == MEMBER, Customer.deleted_at.is_(None))
# The default filter's one clause (virtual members left out), one object so the plain page below is told apart.
NOT_VIRTUAL = Customer.virtual.is_(False)


def live_member() -> ColumnElement[bool]:
    return _LIVE_MEMBER  # clauses are immutable: built once (building one cost about what compiling a page did)


def check_filter(f: pb.MemberFilter) -> None:
    """Validates a MemberFilter field by field (the crowd part is checked when it is translated)."""
    for level in f.levels:
        if not 0 <= level <= 10:
            raise InvalidArgument("levels are 0..10", field="filter.levels")
    for name in ("tag_ids", "registration_mall_ids", "card_open_mall_ids"):
        for value in getattr(f, name):
            parse_int_id(value, f"filter.{name}")
    for value in f.group_ids:
        if value != "default":
            parse_int_id(value, "filter.group_ids")
    for status in f.review_statuses:
        known_enum(member_pb2.ReviewStatus, status, "filter.review_statuses", allow_unspecified=False)
    for name in ("card_opened", "disabled", "store_member", "level_frozen"):
        known_enum(pb.TriState, getattr(f, name), f"filter.{name}")
    if len(f.search) > 100:
        raise InvalidArgument("must be at most 100 characters", field="filter.search")


def filter_clauses(f: pb.MemberFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a MemberFilter (already validated)."""
    clauses: list[ColumnElement[bool]] = []
    if f.search.strip():
        term = f.search.strip()
        like = contains_pattern(term)  # "%" and "_" are searched for, not wildcards
        clauses.append(or_(Customer.name.like(like, escape=LIKE_ESCAPE),
                           Customer.real_name.like(like, escape=LIKE_ESCAPE),
                           Customer.phone.startswith(term, autoescape=True),
                           Customer.email.startswith(term.lower(), autoescape=True),
                           Customer.card_number.startswith(term, autoescape=True)))
    if f.levels:
        clauses.append(Customer.level.in_(list(f.levels)))
    if f.tag_ids:
        clauses.append(Customer.id.in_(select(CustomerTag.customer_id).where(
            CustomerTag.tag_id.in_([int(t) for t in f.tag_ids]))))
    if f.group_ids:
        ids = [int(g) for g in f.group_ids if g != "default"]
        group = Customer.group_id.in_(ids)
        clauses.append(or_(group, Customer.group_id.is_(None)) if "default" in f.group_ids else group)
    for tri, flag in ((f.card_opened, Customer.card_opened), (f.disabled, Customer.disabled),
                      (f.store_member, Customer.store_member), (f.level_frozen, Customer.level_frozen)):
        if tri:
            clauses.append(flag.is_(tri == pb.TRI_STATE_YES))
    if f.review_statuses:
        clauses.append(Customer.review_status.in_(list(f.review_statuses)))
    if f.registration_mall_ids:
        clauses.append(Customer.registration_mall_id.in_([int(m) for m in f.registration_mall_ids]))
    if f.card_open_mall_ids:
        clauses.append(Customer.card_open_mall_id.in_([int(m) for m in f.card_open_mall_ids]))
    if not f.include_virtual:
        clauses.append(NOT_VIRTUAL)
    return clauses


def among(ids: Sequence[int], dialect: str) -> ColumnElement[bool]:
    """``customer.id`` is one of ``ids`` (any number of them: a JSON array on SQLite, an array on PostgreSQL)."""
    return _id_in(Customer.id, dialect, bindparam(None, id_list_of(ids, dialect), type_=_id_list_type(dialect)))


def page_queries(*, where: list[ColumnElement[bool]], order_by: int, ascending: bool, limit: int,
                 after: tuple[Any, int] | None, view: bool = False) -> list[Select[Any]]:
    """The queries that read up to ``limit`` members matching ``where``, in order, after the keyset ``after``
    (value, id): the first that fills the page answers, else the last (which answers any filter). Each reads
    mapped ``Customer`` rows, or with ``view`` the ``VIEW_COLUMNS`` (the member and their stats row).

    A sort on a stats column first walks that column's index in order, a window at a time,
    and keeps the members that match: a page of a broad filter reads about
    page size ÷ share of members matching index entries. A filter too narrow to fill the
    page within the windows (and the never-spent tail of the last-spend order) is answered
    by filtering first and sorting what matched. Both give the same order.
    """
    queries = []
    if order_by in SORT_COLUMNS and _walkable(order_by, ascending, after):
        queries = [_walk(SORT_COLUMNS[order_by], where=where, ascending=ascending, limit=limit, after=after,
                         window=window, view=view) for window in WALK_WINDOWS]
    return [*queries, _sorted(where=where, order_by=order_by, ascending=ascending, limit=limit, after=after,
                              view=view)]


def _walkable(order_by: int, ascending: bool, after: tuple[Any, int] | None) -> bool:
    if order_by not in TIME_ORDERS:
        return True
    # The index holds no order for members who never spent (NULL): they come first ascending,
    # last descending, where only the filter-first query reaches them.
    return not ascending and (after is None or aware(after[0]) != EPOCH)


def _walk(column: Any, *, where: list[ColumnElement[bool]], ascending: bool, limit: int,
          after: tuple[Any, int] | None, window: int, view: bool) -> Select[Any]:
    ordered = select(CustomerStats.customer_id.label("customer_id"), column.label("sort_value")) \
        .where(column.is_not(None))
    if after is not None:
        keyset = tuple_(column, CustomerStats.customer_id)
        bound = tuple_(literal(after[0], column.type), literal(after[1], CustomerStats.customer_id.type))
        ordered = ordered.where(keyset > bound if ascending else keyset < bound)
    direction = (lambda c: c.asc()) if ascending else (lambda c: c.desc())
    top = ordered.order_by(direction(column), direction(CustomerStats.customer_id)).limit(window).subquery()
    query = (_PAGE_OF_VIEWS if view else _PAGE_OF_CUSTOMERS).join(top, top.c.customer_id == Customer.id)
    if view:
        query = query.outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id)
    return (query.where(live_member(), *where)
            .order_by(direction(top.c.sort_value), direction(top.c.customer_id)).limit(limit))


def _sorted(*, where: list[ColumnElement[bool]], order_by: int, ascending: bool, limit: int | BindParameter[int],
            after: tuple[Any, int | BindParameter[int]] | None, view: bool) -> Select[Any]:
    key = ORDER_KEYS[order_by]
    query = (_PAGE_OF_VIEWS if view else _PAGE_OF_CUSTOMERS).where(live_member(), *where)
    if key is not None:
        query = query.join(CustomerStats, CustomerStats.customer_id == Customer.id)
    elif view:
        query = query.outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id)
    if after is not None:
        value, last_id = after
        if key is None:
            query = query.where(Customer.id > last_id if ascending else Customer.id < last_id)
        elif ascending:
            query = query.where(or_(key > value, and_(key == value, Customer.id > last_id)))
        else:
            query = query.where(or_(key < value, and_(key == value, Customer.id < last_id)))
    columns = [Customer.id] if key is None else [key, Customer.id]
    return query.order_by(*[c.asc() if ascending else c.desc() for c in columns]).limit(limit)


# What a view joins in, built once (building a statement costs about what running it does): run each with
# {"ids": [...]}, or {"member_id": ...} for one member's view.
IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
MEMBER_ID: BindParameter[int] = bindparam("member_id")
TAGS = (select(CustomerTag.customer_id, Tag.name).join(Tag, Tag.id == CustomerTag.tag_id)
        .where(CustomerTag.customer_id.in_(IDS)).order_by(Tag.name))
STATS = select(CustomerStats).where(CustomerStats.customer_id.in_(IDS))
INTERACTIONS = (select(CustomerInteraction.customer_id, CustomerInteraction.mall_id)
                .where(CustomerInteraction.customer_id.in_(IDS)).order_by(CustomerInteraction.mall_id))


def _in_id_list(key: InstrumentedAttribute[int], dialect: str) -> ColumnElement[bool]:
    """``key`` is one of the ids in the one parameter ``id_list`` (``id_list_of``). An expanding ``IN`` is rendered
    anew on every run: a fifth of a member page."""
    return _id_in(key, dialect, bindparam("id_list", type_=_id_list_type(dialect)))


def _id_in(key: InstrumentedAttribute[int], dialect: str, ids: BindParameter[Any]) -> ColumnElement[bool]:
    """``key`` is one of the ids that ``ids`` binds: an array on PostgreSQL, a JSON array on SQLite."""
    if dialect == "postgresql":
        return key == any_(ids)
    return key.in_(select(column("value", Integer)).select_from(func.json_each(ids)).scalar_subquery())


def _id_list_type(dialect: str) -> Any:
    return ARRAY(BigInteger) if dialect == "postgresql" else String()


def id_list_of(ids: Sequence[int], dialect: str) -> Any:
    """The ``id_list`` parameter of ``ids``."""
    return list(ids) if dialect == "postgresql" else json.dumps(list(ids))


def _tags_and_malls(dialect: str) -> CompoundSelect[Any]:
    """Both in one statement, for the views read together: (customer id, 0, tag name) rows and (customer id, 1, mall
    id as text) rows, the tags by name, of the members in ``id_list``."""
    both: CompoundSelect[Any] = union_all(
        select(CustomerTag.customer_id, literal_column("0").label("part"), Tag.name.label("value"))
        .join(Tag, Tag.id == CustomerTag.tag_id).where(_in_id_list(CustomerTag.customer_id, dialect)),
        select(CustomerInteraction.customer_id, literal_column("1"), cast(CustomerInteraction.mall_id, String))
        .where(_in_id_list(CustomerInteraction.customer_id, dialect)))
    return both.order_by(both.selected_columns.part, both.selected_columns.value)


TAGS_AND_MALLS = {dialect: _tags_and_malls(dialect) for dialect in ("sqlite", "postgresql")}


def member_view_query(scope: ColumnElement[bool]) -> Select[Any]:
    """A live member (``MEMBER_ID``): their ``VIEW_COLUMNS`` and whether ``scope`` holds them."""
    return (select(*VIEW_COLUMNS, case((scope, True), else_=False).label("visible")).select_from(Customer)
            .outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id)
            .where(Customer.id == MEMBER_ID, live_member()))


MEMBER_VIEW_EVERYONE = member_view_query(EVERYONE)


def grouped(rows: Iterable[Any]) -> dict[int, list[Any]]:
    """(customer id, value) rows as each customer's values, in row order."""
    out: dict[int, list[Any]] = {}
    for customer_id, value in rows:
        out.setdefault(customer_id, []).append(value)
    return out


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: int, *, lock: bool = False) -> Customer | None:
        query = select(Customer).where(Customer.id == member_id, live_member())
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def get_any(self, member_id: int) -> Customer | None:
        """Including soft-deleted members (for the timeline and the ledger's history)."""
        return await self.session.scalar(select(Customer).where(Customer.id == member_id, Customer.kind == MEMBER))

    async def id_by(self, column: Any, value: str) -> int | None:
        return await self.session.scalar(select(Customer.id).where(column == value))

    async def holder_by(self, column: Any, value: str) -> tuple[int, bool] | None:
        """The customer holding ``value`` in ``column`` and whether they are deleted."""
        return await holder_of(self.session, column, value)

    async def customer_any(self, customer_id: int, lock: bool = False) -> Customer | None:
        """A customer of either kind, deleted or not."""
        query = select(Customer).where(Customer.id == customer_id)
        return await self.session.scalar(query.with_for_update() if lock else query)

    async def add(self, customer: Customer) -> Customer:
        """Adds a member with its (empty) stats row: every member has one, so the list can sort on it."""
        self.session.add(customer)
        await self.session.flush()
        self.session.add(empty_stats(customer.id))
        await self.session.flush()
        return customer

    async def visible(self, member_id: int, scope: ColumnElement[bool]) -> bool:
        found = await self.session.scalar(select(Customer.id).where(Customer.id == member_id, scope))
        return found is not None

    async def page(self, *, where: list[ColumnElement[bool]], order_by: int, ascending: bool, limit: int,
                   after: tuple[Any, int] | None) -> Sequence[Customer]:
        """Up to ``limit`` members matching ``where``, in order, after the keyset ``after`` (value, id)
        (see ``page_queries``)."""
        queries = page_queries(where=where, order_by=order_by, ascending=ascending, limit=limit, after=after)
        for query in queries:
            rows = (await self.session.scalars(query)).all()
            if len(rows) == limit or query is queries[-1]:
                return rows
        raise AssertionError("page_queries ends with the query that answers any filter")

    async def tags_of(self, ids: Sequence[int]) -> dict[int, list[str]]:
        return grouped(await self.session.execute(TAGS, {"ids": list(ids)}))

    async def stats_of(self, ids: Sequence[int]) -> dict[int, CustomerStats]:
        return {r.customer_id: r for r in await self.session.scalars(STATS, {"ids": list(ids)})}

    async def interactions_of(self, ids: Sequence[int]) -> dict[int, list[int]]:
        return grouped(await self.session.execute(INTERACTIONS, {"ids": list(ids)}))

    async def add_interaction(self, customer_id: int, mall_id: int, kind: str, at: datetime) -> bool:
        """Relates a member to a mall once; returns True when the relation is new."""
        found = await self.session.get(CustomerInteraction, (customer_id, mall_id))
        if found is not None:
            return False
        self.session.add(CustomerInteraction(customer_id=customer_id, mall_id=mall_id, first_kind=kind, first_at=at))
        await self.session.flush()
        return True

    async def customer(self, customer_id: int) -> Customer | None:
        """Any customer, member or business."""
        return await self.session.get(Customer, customer_id)

    async def group_exists(self, group_id: int) -> bool:
        return await self.session.get(CustomerGroup, group_id) is not None

    async def mall_exists(self, mall_id: int) -> bool:
        return await self.session.get(Mall, mall_id) is not None

    async def delete_contacts(self, customer_id: int) -> None:
        await self.session.execute(delete(Contact).where(Contact.customer_id == customer_id))

    async def customers(self, ids: Sequence[int]) -> Sequence[Customer]:
        """The customers with these ids (any kind, deleted too)."""
        return (await self.session.scalars(select(Customer).where(Customer.id.in_(ids)))).all()


# The page most lists ask for: every member but the virtual ones (the default filter of a caller who sees
# everyone), by id. Built once per direction, with and without a keyset, and run with {"limit": ...,
# "last_id": ...}: building and compiling the statement cost more than running it.
LIMIT: BindParameter[int] = bindparam("limit")
LAST_ID: BindParameter[int] = bindparam("last_id")
PLAIN_ORDERS = frozenset({pb.MEMBER_ORDER_BY_UNSPECIFIED, pb.MEMBER_ORDER_BY_CREATE_TIME})
_PLAIN_PAGES = {
    (ascending, keyset): _sorted(where=[EVERYONE, NOT_VIRTUAL], order_by=pb.MEMBER_ORDER_BY_UNSPECIFIED,
                                 ascending=ascending, limit=LIMIT, after=(None, LAST_ID) if keyset else None, view=True)
    for ascending in (False, True) for keyset in (False, True)}


def _plain(where: list[ColumnElement[bool]], order_by: int) -> bool:
    return order_by in PLAIN_ORDERS and len(where) == 2 and where[0] is EVERYONE and where[1] is NOT_VIRTUAL


class MemberReads:
    """The member views' reads on a synchronous connection (``Database.run_core_read``): GetMember and ListMembers
    read a member, or a page of them, with what their views join in. Every statement selects plain columns and
    runs on the connection: the ORM's session, execution and loading steps, which cost more than the statement,
    are skipped."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def member(self, member_id: int, scope: ColumnElement[bool]) -> tuple[Row[Any], bool] | None:
        """A live member's ``VIEW_COLUMNS`` and whether ``scope`` holds them; None if there is no such member."""
        query = MEMBER_VIEW_EVERYONE if scope is EVERYONE else member_view_query(scope)
        row = self.conn.execute(query, {"member_id": member_id}).first()
        return None if row is None else (row, bool(row[-1]))

    def page(self, *, where: list[ColumnElement[bool]], order_by: int, ascending: bool, limit: int,
             after: tuple[Any, int] | None) -> Sequence[Row[Any]]:
        """As ``MemberRepository.page``, each member as their ``VIEW_COLUMNS``."""
        if _plain(where, order_by):
            if after is None:
                return self.conn.execute(_PLAIN_PAGES[ascending, False], {"limit": limit}).all()
            return self.conn.execute(_PLAIN_PAGES[ascending, True], {"limit": limit, "last_id": after[1]}).all()
        queries = page_queries(where=where, order_by=order_by, ascending=ascending, limit=limit, after=after,
                               view=True)
        for query in queries:
            rows = self.conn.execute(query).all()
            if len(rows) == limit or query is queries[-1]:
                return rows
        raise AssertionError("page_queries ends with the query that answers any filter")

    def tags_and_malls_of(self, ids: Sequence[int]) -> tuple[dict[int, list[str]], dict[int, list[int]]]:
        """Each member's tag names (by name) and interaction malls (by id), in one statement."""
        tags: dict[int, list[str]] = {}
        malls: dict[int, list[int]] = {}
        dialect = self.conn.dialect.name
        for customer_id, part, value in self.conn.execute(TAGS_AND_MALLS[dialect],
                                                          {"id_list": id_list_of(ids, dialect)}):
            if part == 0:
                tags.setdefault(customer_id, []).append(value)
            else:
                malls.setdefault(customer_id, []).append(int(value))
        for values in malls.values():
            values.sort()
        return tags, malls

    def count(self, where: list[ColumnElement[bool]]) -> int:
        return self.conn.scalar(
            select(func.count()).select_from(Customer).where(live_member(), *where)) or 0  # a count is never NULL



def view_sort_value(row: Sequence[Any], order_by: int) -> Any:
    """What a member's ``VIEW_COLUMNS`` row sorts on in ``order_by`` (``ORDER_KEYS``; None for the id order)."""
    if ORDER_KEYS[order_by] is None:
        return None
    value = row[_VIEW_INDEX[SORT_COLUMNS[order_by].key]]
    return EPOCH if value is None and order_by in TIME_ORDERS else value


_VIEW_INDEX = {name: i for i, name in enumerate(MEMBER_COLUMNS)} | {
    name: len(MEMBER_COLUMNS) + i for i, name in enumerate(STATS_SHOWN)}
