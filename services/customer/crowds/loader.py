"""Columnar reads for the crowd index: driver-level cursors, large chunks, numpy arrays.

The index reads every member, tag, interaction mall and order at start. Going through
SQLAlchemy rows and a dict per member costs tens of microseconds a row; here the database
hands back integers only (flags, ids, days since 1970-01-01 and seconds since the epoch; a
NULL as ``NULL``, a value nothing can take), fetched with the driver's own cursor in chunks
of ``CHUNK`` rows (on PostgreSQL, one query per ``CHUNK`` ids) straight into ``int64`` arrays.
Times become local days in numpy (``local_days``). The same reads, narrowed to some ids, serve the
incremental updates, so a rebuild and an update always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Boolean, Column, ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.customer.v1 import crowd_pb2
from services.common.chunks import chunks
from services.common.mapped import table_of
from services.customer.crowds.columns import COLUMNS, EPOCH
from services.customer.crowds.translate import LevelChanges
from services.customer.levels.models import LevelChange
from services.customer.models import Customer, CustomerStats

CHUNK = 100_000
# Ids per ``IN (...)`` when reading some members or orders. They are written into the statement as
# integers, not bound, so ``services.common.chunks.IN_LIST`` (a bound-parameter budget) does not apply.
LITERAL_IDS = 5_000
MEMBER = 1
ONLINE = "ORDER_CHANNEL_ONLINE"  # the one channel that is not offline consumption

# Per dialect: seconds since the epoch of a stored time (UTC), and days since 1970-01-01 of a date.
_EPOCH = {"sqlite": "CAST(strftime('%s', {}) AS INTEGER)",
          "postgresql": "CAST(FLOOR(EXTRACT(EPOCH FROM {})) AS BIGINT)"}
_DAY = {"sqlite": "CAST(julianday({}) - 2440587.5 AS INTEGER)",
        "postgresql": "({} - DATE '1970-01-01')"}

# (column, source, kind): kind "int" as stored, "day" a date, "time" a timestamp made a local day. A member
# without a stats row has 0 points, red packets and orders; a NULL in a nullable column is ``NULL``.
_MEMBER_VALUES = (
    ("gender", "c.gender", "int"), ("card_opened", "c.card_opened", "int"), ("store_member", "c.store_member", "int"),
    ("disabled", "c.disabled", "int"), ("virtual", 'c."virtual"', "int"), ("level", "c.level", "int"),
    ("review_status", "c.review_status", "int"), ("birth_day", "c.birthday", "day"),
    ("card_open_day", "c.card_open_time", "time"), ("level_expire_day", "c.level_expires_at", "time"),
    ("points", "s.points_balance", "int"), ("red_packet", "s.red_packet_balance_fen", "int"),
    ("registration_mall", "c.registration_mall_id", "int"), ("registration_day", "c.registered_at", "time"),
    ("card_open_channel", "c.card_open_channel", "int"), ("online_count", "s.online_count", "int"),
    ("online_total", "s.online_total_fen", "int"), ("online_last_day", "s.online_last_at", "time"),
)
assert {name for name, _, _ in _MEMBER_VALUES} | {"birth_mmdd"} == set(COLUMNS)
NULL = -(2**62)  # what a NULL reads as: no id, day, second or amount is ever this


def _column(source: str) -> Column:
    table, column = source.split(".")
    return {"c": table_of(Customer), "s": table_of(CustomerStats)}[table].c[column.strip('"')]


def _nullable(source: str) -> bool:
    return bool(_column(source).nullable)


def _int(source: str) -> str:
    return f"CAST({source} AS INTEGER)" if isinstance(_column(source).type, Boolean) else source


@dataclass
class Members:
    """Members (kind 1) read from the database: ids ascending, live flags, group ids (0 = default), columns."""

    ids: np.ndarray  # int64
    live: np.ndarray  # bool
    group: np.ndarray  # int64, 0 = the default group
    values: dict[str, np.ndarray]  # int64, 0 where null
    valid: dict[str, np.ndarray]  # bool


@dataclass
class Orders:
    order_id: np.ndarray
    member: np.ndarray
    store: np.ndarray
    day: np.ndarray
    amount: np.ndarray

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What ``MemberIndex.set_orders``/``append_orders`` take."""
        return (self.member.astype(np.uint32), self.store.astype(np.uint32), self.day.astype(np.int32),
                self.amount.astype(np.int64))


def _in_lists(ids: Sequence[int]) -> Iterable[str]:
    for part in chunks(ids, LITERAL_IDS):
        yield ",".join(str(int(i)) for i in part)


async def _read(session: AsyncSession, sql: str, width: int, key: tuple[str, str, str] | None = None) -> np.ndarray:
    """Runs ``sql`` on the session's own connection with the driver's cursor: an int64 array of ``width`` columns.

    SQLite streams the result in chunks of ``CHUNK`` rows. On PostgreSQL a whole-table read names
    its ``key`` (table, id column, the column as ``sql`` names it) and is run as one query per
    ``CHUNK`` ids of that key, so no result is ever all in memory at once and no cursor outlives
    its query (a server-side cursor left open by a read cancelled at shutdown would be left to the
    garbage collector).
    """
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:
        raise RuntimeError("the connection was closed")
    parts = []
    if connection.dialect.name == "sqlite":  # aiosqlite: one thread hop per chunk
        cursor = await driver.execute(sql)
        try:
            while rows := await cursor.fetchmany(CHUNK):
                parts.append(np.array(rows, dtype=np.int64).reshape(-1, width))
        finally:
            await cursor.close()
    else:
        queries = [sql]
        if key is not None:
            table, column, named = key
            async with driver.cursor() as cursor:
                await cursor.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table}")
                top = (await cursor.fetchone())[0]
            joiner = " AND " if " WHERE " in sql else " WHERE "
            queries = [f"{sql}{joiner}{named} > {low} AND {named} <= {low + CHUNK}"
                       for low in range(0, int(top), CHUNK)]
        for query in queries:
            async with driver.cursor() as cursor:
                await cursor.execute(query)
                rows = await cursor.fetchall()
            if rows:
                parts.append(np.array(rows, dtype=np.int64).reshape(-1, width))
    return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.int64)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def top_customer_id(session: AsyncSession) -> int:
    return int((await _read(session, "SELECT COALESCE(MAX(id), 0) FROM customer", 1))[0, 0])


async def members(session: AsyncSession, tz: ZoneInfo, ids: Sequence[int] | None = None) -> Members:
    """Every member's row (or just ``ids``'), in the index's terms."""
    dialect = _dialect(session)
    select = ["c.id", "CAST(c.deleted_at IS NULL AS INTEGER)", "COALESCE(c.group_id, 0)"]
    for _, source, kind in _MEMBER_VALUES:
        value = {"int": _int(source), "day": _DAY[dialect].format(source),
                 "time": _EPOCH[dialect].format(source)}[kind]
        select.append(f"COALESCE({value}, {NULL})" if _nullable(source) else f"COALESCE({value}, 0)")
    base = (f"SELECT {', '.join(select)} FROM customer c LEFT JOIN customer_stats s ON s.customer_id = c.id "
            f"WHERE c.kind = {MEMBER}")
    width = len(select)
    if ids is None:
        rows = await _read(session, base, width, key=("customer", "id", "c.id"))
    else:
        parts = [await _read(session, f"{base} AND c.id IN ({chunk})", width) for chunk in _in_lists(ids)]
        rows = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.int64)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    values: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    for i, (name, _, kind) in enumerate(_MEMBER_VALUES):
        column = rows[:, 3 + i]
        present = column != NULL
        if kind == "time":
            column = local_days(np.where(present, column, 0), tz)
        values[name], valid[name] = np.where(present, column, 0), present
    values["birth_mmdd"], valid["birth_mmdd"] = np.where(valid["birth_day"], month_day(values["birth_day"]), 0), \
        valid["birth_day"]
    return Members(ids=rows[:, 0], live=rows[:, 1].astype(bool), group=rows[:, 2], values=values, valid=valid)


async def memberships(session: AsyncSession, ids: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """``{"tag": (customer, tag) pairs, "interaction": (customer, mall) pairs}`` of every customer or of ``ids``."""
    out = {}
    for name, table, other in (("tag", "customer_tag", "tag_id"), ("interaction", "customer_interaction", "mall_id")):
        sql = f"SELECT customer_id, {other} FROM {table}"
        if ids is None:
            out[name] = await _read(session, sql, 2, key=(table, "customer_id", "customer_id"))
        else:
            parts = [await _read(session, f"{sql} WHERE customer_id IN ({chunk})", 2) for chunk in _in_lists(ids)]
            out[name] = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
    return out


def grouped(pairs: np.ndarray) -> dict[int, np.ndarray]:
    """(member, key) pairs as key -> sorted unique member ids."""
    if not len(pairs):
        return {}
    pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
    keys, starts = np.unique(pairs[:, 1], return_index=True)
    return {int(k): np.unique(part) for k, part in zip(keys, np.split(pairs[:, 0], starts[1:]), strict=True)}


async def orders(session: AsyncSession, zones: dict[int, ZoneInfo], default: ZoneInfo,
                 order_ids: Sequence[int] | None = None) -> Orders:
    """The orders the index counts (offline, not fully refunded, at a store), net of refunds, days in their mall's zone.

    Offline (线下消费) is every channel but online: fast points, lightning pay, photo points and POS.
    """
    base = _orders_sql(_dialect(session))
    if order_ids is None:
        rows = await _read(session, base, 6, key=("member_order", "order_id", "order_id"))
    else:
        parts = [await _read(session, f"{base} AND order_id IN ({chunk})", 6) for chunk in _in_lists(order_ids)]
        rows = np.concatenate(parts) if parts else np.zeros((0, 6), dtype=np.int64)
    return _orders_of(rows, zones, default)


def some_orders(session: Session, zones: dict[int, ZoneInfo], default: ZoneInfo, order_ids: Sequence[int]) -> Orders:
    """``orders`` of these order ids on a synchronous session (``Database.run_sync_read``: the read in one hop)."""
    conn = session.connection()
    base = _orders_sql(conn.dialect.name)
    # Plain tuples to numpy: handed SQLAlchemy's rows, numpy probes each for the array protocols (every probe a
    # failed key lookup that raises inside), some 30x the cost of the conversion (3.7 ms for 450 orders).
    parts = [np.array([tuple(row) for row in conn.exec_driver_sql(f"{base} AND order_id IN ({chunk})")],
                      dtype=np.int64).reshape(-1, 6) for chunk in _in_lists(order_ids)]
    return _orders_of(np.concatenate(parts) if parts else np.zeros((0, 6), dtype=np.int64), zones, default)


def _orders_sql(dialect: str) -> str:
    return (f"SELECT order_id, customer_id, store_id, COALESCE(mall_id, 0), {_EPOCH[dialect].format('occurred_at')}, "
            "amount_fen - refunded_amount_fen FROM member_order WHERE NOT fully_refunded AND store_id IS NOT NULL "
            f"AND channel <> '{ONLINE}'")


def _orders_of(rows: np.ndarray, zones: dict[int, ZoneInfo], default: ZoneInfo) -> Orders:
    day = np.zeros(len(rows), dtype=np.int64)
    malls = rows[:, 3]
    by_zone: dict[ZoneInfo, list[int]] = {}  # the malls of each time zone: one conversion per zone, not per mall
    for mall in np.unique(malls).tolist():
        by_zone.setdefault(zones.get(mall, default), []).append(mall)
    for tz, of_zone in by_zone.items():
        mask = np.isin(malls, of_zone)
        day[mask] = local_days(rows[mask, 4], tz)
    return Orders(order_id=rows[:, 0], member=rows[:, 1], store=rows[:, 2], day=day, amount=rows[:, 5])


def _offset(seconds: int, tz: ZoneInfo) -> int:
    return int(datetime.fromtimestamp(seconds, tz).utcoffset().total_seconds())  # type: ignore[union-attr]  # aware


def local_days(seconds: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """Days since 1970-01-01 in ``tz`` of UTC epoch seconds, as ``columns.local_day`` gives one by one.

    The UTC offset is looked up once per hour that occurs; an hour whose offset changes inside
    it (a time-zone transition) is resolved second by second.
    """
    seconds = np.asarray(seconds, dtype=np.int64)
    if not len(seconds):
        return np.zeros(0, dtype=np.int64)
    hours, inverse = np.unique(seconds // 3600, return_inverse=True)
    first = np.array([_offset(int(h) * 3600, tz) for h in hours], dtype=np.int64)
    last = np.array([_offset(int(h) * 3600 + 3599, tz) for h in hours], dtype=np.int64)
    offsets = first[inverse]
    for i in np.nonzero((first != last)[inverse])[0]:
        offsets[i] = _offset(int(seconds[i]), tz)
    return (seconds + offsets) // 86400


def month_day(days: np.ndarray) -> np.ndarray:
    """``month * 100 + day`` of days since 1970-01-01."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    return month * 100 + (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1


def _day_start(day: int, tz: ZoneInfo) -> datetime | None:
    """The first moment of day ``day`` (days since 1970-01-01) in ``tz``, in UTC as times are stored (SQLite compares
    the stored wall clock); None past the calendar's ends."""
    try:
        return datetime.combine(EPOCH + timedelta(days=day), time(), tz).astimezone(UTC)
    except OverflowError:
        return None


async def level_changed(session: AsyncSession, wanted: LevelChanges, tz: ZoneInfo) -> np.ndarray:
    """The ids of the members with a level change ``wanted`` describes (sorted, unique)."""
    change = LevelChange.__table__.c
    query = select(change.customer_id).distinct()
    if wanted.from_day > (date.min - EPOCH).days and (start := _day_start(wanted.from_day, tz)) is not None:
        query = query.where(change.created_at >= start)
    if (end := _day_start(wanted.to_day + 1, tz)) is not None and wanted.to_day < (date.max - EPOCH).days:
        query = query.where(change.created_at < end)
    ways: dict[int, ColumnElement[bool]] = {
        crowd_pb2.LEVEL_CHANGE_DIRECTION_UPGRADED: change.to_level > change.from_level,
        crowd_pb2.LEVEL_CHANGE_DIRECTION_RETAINED: change.to_level == change.from_level,
        crowd_pb2.LEVEL_CHANGE_DIRECTION_DOWNGRADED: change.to_level < change.from_level}
    if wanted.directions:
        query = query.where(or_(*[ways[d] for d in wanted.directions]))
    if wanted.level is not None:
        query = query.where(change.to_level == wanted.level)
    ids = np.fromiter((await session.scalars(query)).all(), dtype=np.int64)
    return np.unique(ids)
