"""A member's ``customer`` and ``customer_stats`` columns as plain objects, for batch work (the ledger projection).

Batch work reads the columns it needs with one Core select per table, changes them in plain Python
and writes back only the rows that changed, as bulk UPDATEs (``services.common.bulk``): no mapped
object is loaded, instrumented, dirty-tracked or flushed. The attributes are named as the models
name their columns, so the shared rules (level upgrades, the online and offline totals, attribute
changes, member events) apply to a mapped row or a plain one alike.

``read_members`` and ``read_stats`` lock the rows they read on PostgreSQL (``FOR UPDATE``, in id
order; members before their stats rows, as UpdateMember and the level changes lock them): the
batch writes them back at its end, so nobody may change them in between. SQLite has one writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from itertools import compress
from operator import attrgetter, itemgetter, ne
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, bindparam, select

from services.common.bulk import insert_rows, update_rows
from services.common.chunks import padded
from services.common.mapped import table_of
from services.customer.models import Customer, CustomerStats


@dataclass(slots=True)
class MemberRow:
    """What batch work reads of a member's ``customer`` row; ``WRITTEN`` are the columns it may change."""

    id: int
    registration_mall_id: int | None
    email: str | None
    level_frozen: bool
    disabled: bool
    deleted_at: datetime | None
    virtual: bool
    # The columns batch work may change (MEMBER_WRITTEN, in this order).
    real_name: str
    phone: str | None
    store_member: bool
    level: int
    level_expires_at: datetime | None
    updated_at: datetime

    def written(self) -> tuple[Any, ...]:
        return _member_written(self)


MEMBER_COLUMNS = tuple(f.name for f in fields(MemberRow))
MEMBER_WRITTEN = MEMBER_COLUMNS[7:]
_member_written = attrgetter(*MEMBER_WRITTEN)


@dataclass(slots=True)
class StatsRow:
    """A member's ``customer_stats`` row, every column (as ``stats.empty_stats`` makes a new one: all zero)."""

    customer_id: int
    points_balance: int = 0
    red_packet_balance_fen: int = 0
    stored_balance_fen: int = 0
    spend_count: int = 0
    spend_total_fen: int = 0
    first_spend_at: datetime | None = None
    last_spend_at: datetime | None = None
    level_spend_fen: int = 0
    cumulative_spend_fen: int = 0
    points_entry_id: int = 0
    red_packet_entry_id: int = 0
    stored_entry_id: int = 0
    online_count: int = 0
    online_total_fen: int = 0
    online_last_at: datetime | None = None
    offline_count: int = 0
    offline_total_fen: int = 0
    offline_last_at: datetime | None = None

    def values(self) -> tuple[Any, ...]:
        return _stats_values(self)


STATS_COLUMNS = tuple(f.name for f in fields(StatsRow))
# The stats columns that change together (an asset's balance and its watermark; the spend an order or refund
# moves; each side's online or offline figures), numbered as STATS_COLUMNS[1:] are.
STATS_FAMILIES = tuple(next(i for i, family in enumerate((
    ("points_balance", "points_entry_id"), ("red_packet_balance_fen", "red_packet_entry_id"),
    ("stored_balance_fen", "stored_entry_id"),
    ("spend_count", "spend_total_fen", "first_spend_at", "last_spend_at", "level_spend_fen", "cumulative_spend_fen"),
    ("online_count", "online_total_fen", "online_last_at"), ("offline_count", "offline_total_fen", "offline_last_at"),
)) if column in family) for column in STATS_COLUMNS[1:])
_stats_values = attrgetter(*STATS_COLUMNS)


def in_list(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """``column IN :values``, the list given at execution: a statement built once and compiled once, rather than a new
    statement (and its list coerced value by value) per batch. The values go ``padded``."""
    return column.in_(bindparam("values", expanding=True))


_customer, _stats = table_of(Customer), table_of(CustomerStats)
_READ_MEMBERS = (select(*(_customer.c[c] for c in MEMBER_COLUMNS))
                 .where(in_list(_customer.c.id), _customer.c.kind == bindparam("kind"))
                 .order_by(_customer.c.id).with_for_update())
_READ_STATS = (select(*(_stats.c[c] for c in STATS_COLUMNS)).where(in_list(_stats.c.customer_id))
               .order_by(_stats.c.customer_id).with_for_update())


def read_members(conn: Connection, ids: Sequence[int], kind: int) -> dict[int, MemberRow]:
    """The members of ``kind`` among ``ids`` (locked on PostgreSQL, in id order)."""
    return {row[0]: MemberRow(*row) for row in conn.execute(_READ_MEMBERS, {"values": padded(ids), "kind": kind}).all()}


def read_stats(conn: Connection, ids: Sequence[int]) -> dict[int, StatsRow]:
    """The stats rows of ``ids`` (locked on PostgreSQL, in id order)."""
    return {row[0]: StatsRow(*row) for row in conn.execute(_READ_STATS, {"values": padded(ids)}).all()}


def insert_stats(conn: Connection, rows: Sequence[StatsRow]) -> None:
    insert_rows(conn, table_of(CustomerStats), STATS_COLUMNS, [row.values() for row in rows])


def write_members(conn: Connection, rows: Sequence[tuple[MemberRow, tuple[Any, ...]]]) -> None:
    """The ``MEMBER_WRITTEN`` columns of these members that moved from what was read (``written()`` then)."""
    _write_changed(conn, table_of(Customer), "id", MEMBER_WRITTEN, (0,) * len(MEMBER_WRITTEN),
                   [(r.id, before, r.written()) for r, before in rows])


def write_stats(conn: Connection, rows: Sequence[tuple[StatsRow, tuple[Any, ...]]]) -> None:
    """The columns of these stats rows that moved from what was read (``values()`` then)."""
    _write_changed(conn, table_of(CustomerStats), "customer_id", STATS_COLUMNS[1:], STATS_FAMILIES,
                   [(r.customer_id, before[1:], r.values()[1:]) for r, before in rows])


def _write_changed(conn: Connection, table: Table, key: str, columns: Sequence[str], families: Sequence[int],
                   rows: Sequence[tuple[int, tuple[Any, ...], tuple[Any, ...]]]) -> None:
    """UPDATEs the rows (key, before, after) that changed: each row's families (``families[i]``: column i's)
    with a column that moved, one bulk UPDATE per set of families.

    Only what changed is set: an UPDATE that sets an indexed column rewrites its index entry even when the
    value stays (``customer_stats`` has ten). By family rather than by column, so that a batch's rows fall
    into a few sets (a posting moves a balance, an order the spend and its side), each one statement.
    """
    groups: dict[frozenset[int], list[tuple[Any, ...]]] = {}
    positions = range(len(columns))
    for row_key, before, after in rows:
        if before == after:
            continue
        moved = frozenset(families[i] for i in compress(positions, map(ne, before, after)))
        groups.setdefault(moved, []).append((row_key, after))
    for moved, changed in groups.items():
        at = [i for i, family in enumerate(families) if family in moved]
        pick = itemgetter(*at)
        update_rows(conn, table, [columns[i] for i in at], (key,),
                    [(*pick(after), row_key) if len(at) > 1 else (after[at[0]], row_key) for row_key, after in changed])
