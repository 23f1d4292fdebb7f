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
