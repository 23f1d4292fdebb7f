"""The clock: what time it is, in UTC. Services take a ``Clock`` so tests and batch work can fix the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (every stored time is UTC)."""
    return datetime.now(UTC)
