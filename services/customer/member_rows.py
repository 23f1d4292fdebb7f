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
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Table, select

from services.common.bulk import insert_rows, update_rows
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
_stats_values = attrgetter(*STATS_COLUMNS)


def read_members(conn: Connection, ids: Sequence[int], kind: int) -> dict[int, MemberRow]:
    """The members of ``kind`` among ``ids`` (locked on PostgreSQL, in id order)."""
    table = table_of(Customer)
    rows = conn.execute(select(*(table.c[c] for c in MEMBER_COLUMNS))
                        .where(table.c.id.in_(ids), table.c.kind == kind).order_by(table.c.id).with_for_update())
    return {row[0]: MemberRow(*row) for row in rows}


def read_stats(conn: Connection, ids: Sequence[int]) -> dict[int, StatsRow]:
    """The stats rows of ``ids`` (locked on PostgreSQL, in id order)."""
    table = table_of(CustomerStats)
    rows = conn.execute(select(*(table.c[c] for c in STATS_COLUMNS))
                        .where(table.c.customer_id.in_(ids)).order_by(table.c.customer_id).with_for_update())
    return {row[0]: StatsRow(*row) for row in rows}


def insert_stats(conn: Connection, rows: Sequence[StatsRow]) -> None:
    insert_rows(conn, table_of(CustomerStats), STATS_COLUMNS, [row.values() for row in rows])


def write_members(conn: Connection, rows: Sequence[tuple[MemberRow, tuple[Any, ...]]]) -> None:
    """The ``MEMBER_WRITTEN`` columns of these members that moved from what was read (``written()`` then)."""
    _write_changed(conn, table_of(Customer), "id", MEMBER_WRITTEN, [(r.id, before, r.written()) for r, before in rows])


def write_stats(conn: Connection, rows: Sequence[tuple[StatsRow, tuple[Any, ...]]]) -> None:
    """The columns of these stats rows that moved from what was read (``values()`` then)."""
    _write_changed(conn, table_of(CustomerStats), "customer_id", STATS_COLUMNS[1:],
                   [(r.customer_id, before[1:], r.values()[1:]) for r, before in rows])


def _write_changed(conn: Connection, table: Table, key: str, columns: Sequence[str],
                   rows: Sequence[tuple[int, tuple[Any, ...], tuple[Any, ...]]]) -> None:
    """UPDATEs each row's (key, before, after) changed columns, one bulk UPDATE per set of changed columns.

    Only what changed is set: an UPDATE that sets an indexed column rewrites its index entry even when the
    value stays (``customer_stats`` has ten), and a batch's rows change a few sets of columns (a posting its
    balance, an order the spend).
    """
    groups: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
    for row_key, before, after in rows:
        moved = tuple(i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old is not new
                      and old != new)
        if moved:
            groups.setdefault(moved, []).append((*(after[i] for i in moved), row_key))
    for moved, values in groups.items():
        update_rows(conn, table, [columns[i] for i in moved], (key,), values)
