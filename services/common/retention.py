"""Retention: the shared bookkeeping tables keep what they are for, and no more.

- ``idempotency_record``: a repeat of a request gets its first answer for
  ``idempotency_retention_days`` (30 by default); clients retry within minutes, so a record
  older than that only takes space. A request repeated after that is a new request.
- ``processed_message``: a consumer remembers a message id for ``processed_retention_days``
  (30). JetStream redelivers only messages not yet acknowledged, within the consumer's ack
  wait, so an older id never comes back unless a consumer is recreated from the stream's start.
- ``outbox_event``: a row published more than ``outbox_retention_days`` (7) ago is deleted;
  the stream holds the event. A row not yet published is never deleted.

``Pruner`` deletes by age in batches of ``batch`` rows, one short write transaction each, so
other writers (one at a time on SQLite) wait for one batch at most. It runs once an interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import ColumnElement, MetaData, Table, delete, select, tuple_

from services.common.clock import utcnow
from services.common.db import Database, rowcount
from services.common.logs import get_logger
from services.common.retry import every

log = get_logger(__name__)

PRUNED = Counter("crowdpack_retention_deleted_total", "Rows deleted by retention", ["table"])


class Pruner:
    def __init__(self, db: Database, metadata: MetaData, *, idempotency_days: int, processed_days: int,
                 outbox_days: int, interval_s: float = 3600.0, batch: int = 5_000) -> None:
        self.db = db
        self.tables = metadata.tables
        # Each table, the column its age is read from, and how old a row may get.
        self.ages = {"idempotency_record": ("created_at", timedelta(days=idempotency_days)),
                     "processed_message": ("processed_at", timedelta(days=processed_days)),
                     "outbox_event": ("published_at", timedelta(days=outbox_days))}
        self.interval_s = interval_s
        self.batch = batch

    async def run(self) -> None:
        await every(self.interval_s, self.prune_once, what="retention")

    async def prune_once(self, now: datetime | None = None) -> dict[str, int]:
        """Deletes every row past its table's age; returns how many per table."""
        now = now or utcnow()
        deleted = {}
        for name, (column, age) in self.ages.items():
            table = self.tables.get(name)
            if table is None:
                continue
            deleted[name] = await self._prune(table, table.c[column] < now - age)
            if deleted[name]:
                PRUNED.labels(name).inc(deleted[name])
                log.info("retention pruned rows", table=name, rows=deleted[name])
        return deleted

    async def _prune(self, table: Table, old: ColumnElement[bool]) -> int:
        """Deletes the rows ``old`` matches (a NULL age, an outbox row not yet published, never does)."""
        keys = list(table.primary_key.columns)
        doomed = select(*keys).where(old).limit(self.batch)
        key = keys[0] if len(keys) == 1 else tuple_(*keys)
        total = 0
        while True:
            async with self.db.transaction() as session:
                count = rowcount(await session.execute(delete(table).where(key.in_(doomed))))
            total += count
            if count < self.batch:
                return total
