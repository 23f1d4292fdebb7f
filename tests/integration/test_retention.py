"""Retention prunes the shared tables by age, in batches, and never an unsent outbox row."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.common.clock import utcnow
from services.common.db import Database
from services.common.retention import Pruner
from services.ledger.models import Base, IdempotencyRecord, OutboxEvent, ProcessedMessage

pytestmark = pytest.mark.database("ledger")


async def test_old_rows_go_in_batches_and_unsent_events_stay(database_url):
    db = Database(database_url, Path("services/ledger/migrations"))
    await db.migrate()
    now = utcnow()
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    try:
        async with db.transaction() as session:
            for i in range(23):
                when = old if i < 13 else recent
                session.add(IdempotencyRecord(request_id=f"r{i}", method="PostEntry", request_hash="h", response=b"",
                                              created_at=when))
                session.add(ProcessedMessage(consumer="c", msg_id=f"m{i}", processed_at=when))
                # Published long ago, published lately, and never published (old rows included).
                published = old if i < 10 else recent if i < 20 else None
                session.add(OutboxEvent(msg_id=f"e{i}", subject="s", payload=b"", created_at=old,
                                        published_at=published))
        pruner = Pruner(db, Base.metadata, idempotency_days=30, processed_days=30, outbox_days=7, batch=4)
        assert await pruner.prune_once(now) == {"idempotency_record": 13, "processed_message": 13, "outbox_event": 10}
        async with db.read() as session:
            assert sorted(await session.scalars(select(IdempotencyRecord.request_id))) == sorted(
                f"r{i}" for i in range(13, 23))
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 10
            left = (await session.execute(select(OutboxEvent.msg_id, OutboxEvent.published_at))).all()
            assert sorted(m for m, _ in left) == sorted(f"e{i}" for i in range(10, 23))
            assert sum(1 for _, published in left if published is None) == 3
        # A second pass finds nothing more.
        assert await pruner.prune_once(now) == {"idempotency_record": 0, "processed_message": 0, "outbox_event": 0}
    finally:
        await db.dispose()
