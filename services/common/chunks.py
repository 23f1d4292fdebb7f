"""Splitting a sequence into runs of at most ``size`` items: IN (...) lists, bulk statements, batched events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# Values per ``IN (...)`` list of bound parameters: far below SQLite's 32,766 and PostgreSQL's 65,535
# parameters a statement, and short enough that the statement plans fast.
IN_LIST = 2000


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in order, ``size`` at a time (the last run may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def padded(values: Sequence[T]) -> Sequence[T]:
    """``values`` (at least one) lengthened to the next power of two (8 at least) by repeating the last, for an
    expanding ``IN`` list: its statement then has a few texts rather than one per length, so the database reuses
    the prepared statement (SQLite's statement cache, PostgreSQL's prepared statements) instead of parsing and
    planning it anew each batch. A value repeated in an ``IN`` list changes nothing."""
    size = max(8, 1 << (len(values) - 1).bit_length())
    return values if len(values) == size else [*values, *([values[-1]] * (size - len(values)))]
