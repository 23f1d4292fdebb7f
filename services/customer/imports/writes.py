"""How an import batch's rows reach the database: straight to the driver through ``services.common.bulk``.

``Driver`` converts values to the driver's form once (on SQLite, the text SQLAlchemy would write) and
inserts or updates many rows per statement; ``Staging`` collects the timeline entries and outbox events
a batch makes, written with one statement each at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import insert_rows, update_rows
from services.common.db import dialect_of
from services.common.mapped import table_of
from services.common.outbox import OUTBOX_COLUMNS, event_rows
from services.customer import timeline
from services.customer.models import OutboxEvent, TimelineEntry

TIME_COLUMNS = {"registered_at", "card_open_time", "level_expires_at", "deleted_at", "created_at", "updated_at"}
DATE_COLUMNS = {"birthday"}
BOOL_COLUMNS = {"card_opened", "level_frozen", "disabled", "store_member", "virtual"}


def same_value(value: Any) -> Any:
    return value


def sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime text (UTC fields), so rows written here read back like any other."""
    if value is None:
        return None
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond:06d}")


def sqlite_date(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def sqlite_bool(value: bool) -> int:
    return 1 if value else 0


class Driver:
    """Statements sent straight to the driver (executemany), skipping per-row SQLAlchemy processing."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.sqlite = dialect_of(session) == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.time = sqlite_time if self.sqlite else same_value
        self.date = sqlite_date if self.sqlite else same_value
        self.bool = sqlite_bool if self.sqlite else same_value

    def convert(self, column: str, value: Any) -> Any:
        if column in TIME_COLUMNS:
            return self.time(value)
        if column in DATE_COLUMNS:
            return self.date(value)
        if column in BOOL_COLUMNS:
            return self.bool(value)
        return value

    def marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

    async def insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """INSERTs rows in this driver's form (``convert``: on SQLite already its text), through ``bulk``."""
        if rows:
            await self.session.run_sync(lambda s: insert_rows(s.connection(), table, columns, rows,
                                                              converted=self.sqlite))

    async def update(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """``UPDATE table SET columns WHERE id = ...`` per row (the values, then the id), as ``insert`` goes."""
        if rows:
            await self.session.run_sync(lambda s: update_rows(s.connection(), table, columns, ("id",), rows,
                                                              converted=self.sqlite))


class Staging:
    """Stands in for the session where timeline.record and the member events *add* rows, and collects
    the rows the writer builds itself (``entry``, ``event``) for new members and tags.

    The batch writes them all with two executemany statements instead of one ORM insert (and one
    round trip to the database thread) each. Everything else goes to the real session.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.bind = session.bind
        self.added: list[Any] = []

        # Built here directly (no ORM object each): timeline rows (customer_id, kind, detail, actor_id,
        # created_at), the time in the driver's format, and event messages (outbox.event_rows writes them).
        self.entries: list[tuple[Any, ...]] = []
        self.events: list[Message] = []

    def add(self, row: Any) -> None:
        self.added.append(row)

    def entry(self, customer_id: int, kind: str, actor_id: str, at: Any, **detail: Any) -> None:
        """What timeline.record writes (same detail JSON), as a row."""
        self.entries.append((customer_id, kind, timeline.detail_json(**detail), actor_id, at))

    def event(self, message: Any) -> None:
        """What outbox.add_event writes, as a message the batch writes with the others (outbox.event_rows)."""
        self.events.append(message)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self.session.execute(*args, **kwargs)

    async def write(self, driver: Driver, now: datetime) -> None:
        timeline_rows = [(r.customer_id, r.kind, r.detail, r.actor_id, driver.time(r.created_at))
                         for r in self.added if isinstance(r, TimelineEntry)]
        outbox_rows = [(r.msg_id, r.subject, r.payload, r.created_at) for r in self.added if isinstance(r, OutboxEvent)]
        if len(timeline_rows) + len(outbox_rows) != len(self.added):
            raise TypeError("only timeline entries and outbox events are staged")
        timeline_rows += self.entries
        outbox_rows += event_rows(self.events, now)
        self.added, self.entries, self.events = [], [], []
        await driver.insert(table_of(TimelineEntry), ("customer_id", "kind", "detail", "actor_id", "created_at"),
                            timeline_rows)
        if outbox_rows:
            await self.session.run_sync(lambda s: insert_rows(s.connection(), table_of(OutboxEvent), OUTBOX_COLUMNS,
                                                              outbox_rows))
