"""Bulk rows: many INSERTs or UPDATEs of one table in one call, inside the caller's transaction.

``insert_rows`` and ``update_rows`` take plain tuples and convert each value exactly as
SQLAlchemy would (each column type's bind processor), without SQLAlchemy's per-row statement
bookkeeping. How the rows reach the database depends on it:

- SQLite: one driver-level ``executemany`` (the statement is prepared once; each row is a step);
- PostgreSQL: one statement per 20,000 rows that reads the rows from arrays, one array per column
  (``INSERT ... SELECT ... FROM unnest(...) WITH ORDINALITY ... ORDER BY ordinality``). An
  executemany would cost a round of the pipeline and a bind per row; the arrays cost one of each.
  The ``ORDER BY`` keeps row order, so a serial key (the outbox's) numbers the rows as given.
  A table with a JSON column, or an UPDATE whose keys repeat (an executemany would apply
  each row in turn), still goes row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, LargeBinary, Table

from services.common.chunks import chunks

ARRAY_ROWS = 20_000  # rows per PostgreSQL statement


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """INSERTs ``rows`` (tuples in ``columns`` order) into ``table``, in order.

    Columns left out get their server defaults (an autoincrement key its next value, in row order).
    """
    if not rows:
        return
    rows = _processed(conn, table, columns, rows)
    name, names = _names(conn, table, columns)
    if _arrays_fit(conn, table, columns):
        sql = (f"INSERT INTO {name} ({', '.join(names)}) SELECT {', '.join(_aliases(columns))} "
               f"FROM {_unnest(conn, table, columns)} WITH ORDINALITY AS v({', '.join(_aliases(columns))}, n) "
               "ORDER BY n")
        for part in chunks(rows, ARRAY_ROWS):
            conn.exec_driver_sql(sql, _as_arrays(part, len(columns)))
        return
    mark = _placeholder(conn)
    conn.exec_driver_sql(f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join(mark for _ in columns)})",
                         rows)  # type: ignore[arg-type]


def update_rows(conn: Connection, table: Table, set_columns: Sequence[str], where_columns: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> int:
    """``UPDATE table SET set_columns WHERE where_columns = ...`` once per row (values: the set, then the where
    columns); returns how many rows matched in all."""
    if not rows:
        return 0
    columns = [*set_columns, *where_columns]
    rows = _processed(conn, table, columns, rows)
    name, names = _names(conn, table, columns)
    keys = len(set_columns)
    if _arrays_fit(conn, table, columns) and len({tuple(row[keys:]) for row in rows}) == len(rows):
        aliases = _aliases(columns)
        sql = (f"UPDATE {name} SET {', '.join(f'{c} = v.{a}' for c, a in zip(names[:keys], aliases))} "
               f"FROM {_unnest(conn, table, columns)} AS v({', '.join(aliases)}) WHERE "
               + " AND ".join(f"{name}.{c} = v.{a}" for c, a in zip(names[keys:], aliases[keys:])))
        return sum(conn.exec_driver_sql(sql, _as_arrays(part, len(columns))).rowcount
                   for part in chunks(rows, ARRAY_ROWS))
    mark = _placeholder(conn)
    sql = (f"UPDATE {name} SET {', '.join(f'{c} = {mark}' for c in names[:keys])} "
           f"WHERE {' AND '.join(f'{c} = {mark}' for c in names[keys:])}")
    return conn.exec_driver_sql(sql, rows).rowcount  # type: ignore[arg-type]


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _names(conn: Connection, table: Table, columns: Sequence[str]) -> tuple[str, list[str]]:
    """The table's and the columns' names as the dialect quotes them (only where a name needs it)."""
    quote = conn.dialect.identifier_preparer
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
              else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for i, name in enumerate(columns)]
    return [(i, f) for i, f in found if f is not None]


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
