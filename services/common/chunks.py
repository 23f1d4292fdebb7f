"""Splitting a sequence into runs of at most ``size`` items: IN (...) lists, bulk statements, batched events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in order, ``size`` at a time (the last run may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
