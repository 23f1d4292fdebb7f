"""Bulk rows: many INSERTs or UPDATEs of one table in one call, inside the caller's transaction.

``insert_rows`` and ``update_rows`` take plain tuples and convert each value exactly as
SQLAlchemy would (each column type's bind processor), without SQLAlchemy's per-row statement
bookkeeping (or take them as converted already). How the rows reach the database:

- SQLite: statements of up to 1,000 rows each (``INSERT ... VALUES (...), (...)``, ``UPDATE ... FROM
  (VALUES ...)``). An executemany steps once per row, and sqlite3 lets go of the GIL around every
  step: with another thread busy in Python (a gRPC loop, an import's reader) each row then waits
  for the GIL, many times slower than alone (the probe in commit f90a56d). One step per 1,000 rows
  waits once.
- PostgreSQL: one statement per 20,000 rows that reads the rows from arrays, one array per column
  (``INSERT ... SELECT ... FROM unnest(...) WITH ORDINALITY ... ORDER BY ordinality``). An
  executemany would cost a round of the pipeline and a bind per row; the arrays cost one of each.

Rows go in in the order given, so a serial key (the outbox's) numbers them in that order. A table
with a JSON column on PostgreSQL, or an UPDATE whose keys repeat (an executemany would apply each
row in turn), still goes row by row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import JSON, Connection, Dialect, LargeBinary, Table, func, select, text
from sqlalchemy.dialects.sqlite import base as sqlite_types
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from services.common.chunks import chunks
from services.common.mapped import table_of

ARRAY_ROWS = 20_000  # rows per PostgreSQL statement
VALUES_ROWS = 1_000  # rows per SQLite statement ...
# ... within its limit of bound values per statement (32,766 since SQLite 3.32; 999 before).
SQLITE_VALUES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
# How SQLAlchemy stores a DATETIME on SQLite unless told otherwise: ``isoformat(" ", "microseconds")`` of the
# wall time, which ``_bind_processor`` makes directly.
SQLITE_DATETIME_FORMAT = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                converted: bool = False, skip_existing: bool = False) -> None:
    """INSERTs ``rows`` (tuples in ``columns`` order) into ``table``, in order.

    Columns left out get their server defaults (an autoincrement key its next value, in row order).
    ``converted``: the values are already in the driver's form (as their bind processors would leave them).
    ``skip_existing``: a row whose key (or a unique column) is taken already is left out
    (``ON CONFLICT DO NOTHING``, on both backends).
    """
    if not rows:
        return
    if not converted:
        rows = _processed(conn, table, columns, rows)
    name, names = _names(conn.dialect, table, tuple(columns))
    into = f"INSERT INTO {name} ({', '.join(names)})"
    tail = " ON CONFLICT DO NOTHING" if skip_existing else ""
    if _arrays_fit(conn, table, columns):
        aliases = ", ".join(_aliases(columns))
        sql = (f"{into} SELECT {aliases} FROM {_unnest(conn, table, columns)} WITH ORDINALITY AS v({aliases}, n) "
               f"ORDER BY n{tail}")
        for part in chunks(rows, ARRAY_ROWS):
            conn.exec_driver_sql(sql, _as_arrays(part, len(columns)))
    elif conn.dialect.name == "sqlite":
        for part in chunks(rows, _values_rows(len(columns))):
            conn.exec_driver_sql(f"{into} VALUES {_values(len(part), len(columns))}{tail}", _flat(part))
    else:
        mark = _placeholder(conn)
        conn.exec_driver_sql(f"{into} VALUES ({', '.join(mark for _ in columns)}){tail}", rows)


def update_rows(conn: Connection, table: Table, set_columns: Sequence[str], where_columns: Sequence[str],
                rows: Sequence[Sequence[Any]], *, converted: bool = False) -> int:
    """``UPDATE table SET set_columns WHERE where_columns = ...`` once per row (values: the set, then the where
    columns); returns how many rows matched in all. ``converted`` as for ``insert_rows``."""
    if not rows:
        return 0
    columns = [*set_columns, *where_columns]
    if not converted:
        rows = _processed(conn, table, columns, rows)
    name, names = _names(conn.dialect, table, tuple(columns))
    keys, width = len(set_columns), len(columns)
    unique = len({tuple(row[keys:]) for row in rows}) == len(rows)
    if unique and _arrays_fit(conn, table, columns):
        aliases = _aliases(columns)
        sql = _update_from(name, names, keys, f"{_unnest(conn, table, columns)} AS v({', '.join(aliases)})", aliases)
        return sum(conn.exec_driver_sql(sql, _as_arrays(part, width)).rowcount for part in chunks(rows, ARRAY_ROWS))
    if unique and conn.dialect.name == "sqlite":
        aliases = [f"column{i + 1}" for i in range(width)]  # how SQLite names the columns of a VALUES list
        return sum(conn.exec_driver_sql(_update_from(name, names, keys, f"(VALUES {_values(len(part), width)}) AS v",
                                                     aliases), _flat(part)).rowcount
                   for part in chunks(rows, _values_rows(width)))
    mark = _placeholder(conn)
    sql = (f"UPDATE {name} SET {', '.join(f'{c} = {mark}' for c in names[:keys])} "
           f"WHERE {' AND '.join(f'{c} = {mark}' for c in names[keys:])}")
    return conn.exec_driver_sql(sql, rows).rowcount


def _update_from(name: str, names: list[str], keys: int, source: str, aliases: list[str]) -> str:
    """``UPDATE name SET <the first keys names> FROM source WHERE <the other names> match``, by alias."""
    return (f"UPDATE {name} SET {', '.join(f'{c} = v.{a}' for c, a in zip(names[:keys], aliases))} FROM {source} "
            "WHERE " + " AND ".join(f"{name}.{c} = v.{a}" for c, a in zip(names[keys:], aliases[keys:])))


def _values_rows(width: int) -> int:
    return max(1, min(VALUES_ROWS, SQLITE_VALUES // width))


def _values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?), ...``: ``rows`` rows of ``width`` values."""
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * rows)


def _flat(rows: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    """The rows' values in one tuple: one statement's parameters (a list would read as many statements')."""
    return tuple(chain.from_iterable(rows))


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


@cache
def _names(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[str, list[str]]:
    """The table's and the columns' names as the dialect quotes them (only where a name needs it)."""
    quote = dialect.identifier_preparer
    return quote.format_table(table), [quote.quote(c) for c in columns]


def _aliases(columns: Sequence[str]) -> list[str]:
    return [f"c{i}" for i in range(len(columns))]


def _arrays_fit(conn: Connection, table: Table, columns: Sequence[str]) -> bool:
    """Whether the rows can go to PostgreSQL as one array per column (no JSON: its values are text to cast)."""
    return conn.dialect.name == "postgresql" and not any(isinstance(table.c[c].type, JSON) for c in columns)


def _unnest(conn: Connection, table: Table, columns: Sequence[str]) -> str:
    """``unnest(%b::T0[], %b::T1[], ...)``: one array per column, sent in binary, typed as the column is."""
    return "unnest(" + ", ".join(f"%b::{table.c[c].type.compile(dialect=conn.dialect)}[]" for c in columns) + ")"


def _as_arrays(rows: Sequence[Sequence[Any]], width: int) -> tuple[list[Any], ...]:
    arrays: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for array, value in zip(arrays, row):
            array.append(value)
    return arrays


@cache
def _processors(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> list[tuple[int, Callable[[Any], Any]]]:
    """The columns (by position) that have a bind processor, and it; none for binary columns, whose processor
    only wraps ``bytes`` in the DBAPI's ``Binary``, which sqlite3 and psycopg do themselves."""
    found = [(i, None if isinstance(table.c[name].type, LargeBinary)
              else _bind_processor(table.c[name].type.dialect_impl(dialect), dialect))
             for i, name in enumerate(columns)]
    return [(i, f) for i, f in found if f is not None]


@cache
def column_binder(dialect: Dialect, table: Table, name: str) -> Callable[[Any], Any]:
    """What turns a value of the column ``name`` into the driver's form, as its type's bind processor does (the
    same fast path for SQLite's DATETIME as the bulk rows take): for callers that make rows ``converted``."""
    impl = table.c[name].type.dialect_impl(dialect)
    process = None if isinstance(table.c[name].type, LargeBinary) else _bind_processor(impl, dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


def _bind_processor(impl: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The type's bind processor; for SQLite's DATETIME in its default storage format, the same text made by
    ``datetime.isoformat`` (C) rather than a ``%`` format of seven attributes: a batch binds thousands of times."""
    process = impl.bind_processor(dialect)
    if process is None or type(impl) is not sqlite_types.DATETIME or \
            getattr(impl, "_storage_format", None) != SQLITE_DATETIME_FORMAT:
        return process
    slow = process

    def fast(value: Any) -> Any:
        if type(value) is datetime:  # the wall time, its zone (if any) cut off as SQLAlchemy's format leaves it out
            return value.isoformat(" ", "microseconds")[:26]
        return slow(value)
    return fast


def _processed(conn: Connection, table: Table, columns: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """The rows as SQLAlchemy would send them: each value through its column type's bind processor.

    Bulk rows repeat values (the transaction's time, None), so each column remembers its last conversion.
    """
    processors = _processors(conn.dialect, table, tuple(columns))
    if not processors:
        return rows
    last: list[tuple[Any, Any]] = [(object(), None) for _ in processors]
    out = []
    for row in rows:
        values = list(row)
        for k, (i, f) in enumerate(processors):
            value = values[i]
            seen, converted = last[k]
            if value is not seen:
                converted = f(value)
                last[k] = (value, converted)
            values[i] = converted
        out.append(tuple(values))
    return out


def allocate_ids(session: Session | Connection, counts: dict[Table, int]) -> dict[Table, list[int]]:
    """New ids for each table's integer key (ascending), in one query, so rows insert in one statement.

    SQLite cannot return the ids of a multi-row INSERT in order, so SQLAlchemy would insert such
    rows one by one; with ids given up front they go in with one executemany. On SQLite the
    transaction holds the only write lock, so max + 1 ... are free; PostgreSQL draws them from
    each column's sequence.
    """
    wanted = [(table, n) for table, n in counts.items() if n > 0]
    ids: dict[Table, list[int]] = {table: [] for table in counts}
    if not wanted:
        return ids
    keys = [table.primary_key.columns.values()[0] for table, _ in wanted]
    # The transaction's connection, not the session: a session query would first flush the rows
    # that are waiting for these very ids.
    conn = session.connection() if isinstance(session, Session) else session
    if conn.dialect.name == "postgresql":
        parts = [f"SELECT {i} AS k, nextval(pg_get_serial_sequence('{table.name}', '{key.name}')) AS v "
                 f"FROM generate_series(1, :n{i})" for i, ((table, _), key) in enumerate(zip(wanted, keys))]
        rows = conn.execute(text(" UNION ALL ".join(parts)), {f"n{i}": n for i, (_, n) in enumerate(wanted)})
        for k, v in rows:
            ids[wanted[k][0]].append(v)
        for table, _ in wanted:
            ids[table].sort()
        return ids
    tops = (conn.execute(select(*[select(func.coalesce(func.max(key), 0)).scalar_subquery()
                                        for key in keys]))).one()
    for (table, n), top in zip(wanted, tops, strict=True):
        ids[table] = list(range(top + 1, top + 1 + n))
    return ids


class Adds(Protocol):
    """Where new rows go: a session, or ``Staged`` rows written in bulk at the end of a batch."""

    def add(self, instance: Any) -> None: ...


def add_row(session: Adds, model: type[Any], **values: Any) -> None:
    """Adds a new row of ``model``: to a ``Staged`` as its plain values (no mapped object is made, which costs more
    than the row's bulk INSERT), to a session as a mapped object."""
    if isinstance(session, Staged):
        session.add_row(model, values)
    else:
        session.add(model(**values))


class Staged:
    """New rows of mapped models kept outside the session until ``write``: a batch that adds thousands of rows
    pays neither the unit of work's bookkeeping for each (add, flush, expunge) nor its one statement per row.

    A row is a mapped object (``add``) or its column values (``add_row``: a dict, nothing instrumented to make).
    Objects may still change until ``write`` (they are transient: no flush sees them).
    """

    def __init__(self) -> None:
        self.rows: dict[type[Any], list[Any]] = {}

    def add(self, instance: Any) -> None:
        self.rows.setdefault(type(instance), []).append(instance)

    def add_row(self, model: type[Any], values: dict[str, Any]) -> None:
        self.rows.setdefault(model, []).append(values)

    def write(self, session: Session | Connection, models: Sequence[type[Any]]) -> None:
        """Inserts the rows of these models, a model at a time in this order, each in the order added (a primary key
        left unset takes its autoincrement value, and is not read back)."""
        conn = session.connection() if isinstance(session, Session) else session
        for model in models:
            rows = self.rows.pop(model, None)
            if rows:
                _insert_staged(conn, table_of(model), rows)


def _insert_staged(conn: Connection, table: Table, rows: Sequence[Any]) -> None:
    def value(row: Any, key: str) -> Any:
        return row.get(key) if isinstance(row, dict) else getattr(row, key)

    first = rows[0]
    keys = [c.key for c in table.columns
            if not (c.primary_key and c.autoincrement is not False and value(first, c.key) is None)]
    if all(isinstance(row, dict) for row in rows):  # ``add_row``'s: a missing column is None, as ``value`` has it
        insert_rows(conn, table, keys, [tuple(map(row.get, keys)) for row in rows])
    else:
        insert_rows(conn, table, keys, [tuple(value(row, k) for k in keys) for row in rows])
