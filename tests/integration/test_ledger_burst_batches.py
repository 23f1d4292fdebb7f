"""A burst of ledger events applied in batches, with duplicates, ends where the same events one at a time end.

Mixed events (orders, partial and full refunds, postings and batch postings, settlements,
vouchers, late entries, unknown members, bursts for a few members) about a few hundred members.
One database takes them through the consumer's batched transaction (``apply_batch``: batches of
random sizes, about a tenth of the messages delivered twice, in the same batch or a later one);
the other through the per-message handlers, one event at a time in stream order. Both then hold
the same statistics, levels, orders, interaction malls, member attributes and timeline, and a
crowd index following each database's customer events (coalesced per batch on the batched side,
one event at a time on the other) equals a fresh build and the other.
"""

from __future__ import annotations

import os
import random
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from services.common.db import Database
from services.common.events import LEDGER_STREAM
from services.customer.crowds.index import CrowdIndex
from services.customer.levels.models import LevelChange
from services.customer.models import (
    Customer,
    CustomerInteraction,
    CustomerStats,
    MemberOrder,
    OutboxEvent,
    ProcessedMessage,
    TimelineEntry,
)
from services.customer.service import consumers
from tests.support.crowd_index import contents, fresh
from tests.support.ledger_burst import Shape, burst, seed

pytestmark = pytest.mark.slow
CUSTOMER_MIGRATIONS = Path("services/customer/migrations")
SHAPE = Shape(members=400, tags=40, stores=20, malls=6, groups=3)
# The burst is 10,000 events (CROWDPACK_TEST_BURST_EVENTS=10000); the suite runs 800 to keep within its
# time budget on a shared 2-core machine.
EVENTS = int(os.environ.get("CROWDPACK_TEST_BURST_EVENTS", "800"))


async def projection(db: Database) -> dict:
    """Everything the projection keeps, in a comparable form."""
    async with db.read() as session:
        def rows(*columns):
            return session.execute(select(*columns).order_by(*columns))

        stats = [tuple(r) for r in await rows(*CustomerStats.__table__.columns)]
        orders = [tuple(r) for r in await rows(*MemberOrder.__table__.columns)]
        interactions = [tuple(r) for r in await rows(CustomerInteraction.customer_id, CustomerInteraction.mall_id,
                                                     CustomerInteraction.first_kind)]
        members = [tuple(r) for r in await rows(Customer.id, Customer.level, Customer.phone, Customer.real_name,
                                                Customer.store_member)]
        levels = [tuple(r) for r in await rows(LevelChange.customer_id, LevelChange.from_level, LevelChange.to_level,
                                               LevelChange.reason)]
        timeline = [tuple(r) for r in await rows(TimelineEntry.customer_id, TimelineEntry.kind, TimelineEntry.detail)]
    return {"stats": stats, "orders": orders, "interactions": interactions, "members": members, "levels": levels,
            "timeline": timeline}


async def follow_outbox(db: Database, index: CrowdIndex, per_apply: int) -> None:
    """Feeds the database's customer events (its outbox, in order) to the index, ``per_apply`` at a time."""
    async with db.read() as session:
        rows = (await session.execute(select(OutboxEvent.subject, OutboxEvent.payload)
                                      .order_by(OutboxEvent.seq))).all()
    msgs = [SimpleNamespace(subject=r.subject, data=r.payload) for r in rows]
    for start in range(0, len(msgs), per_apply):
        await index.apply(msgs[start:start + per_apply])


@pytest.fixture
def two_databases(backend, databases, tmp_path):
    with ExitStack() as stack:
        yield [stack.enter_context(databases.fresh(backend, tmp_path, name=name, service="customer"))
               for name in ("batched", "single")]


async def test_a_burst_in_batches_with_duplicates_equals_the_same_burst_one_event_at_a_time(two_databases):
    items = burst(SHAPE, EVENTS, hot_members=25)
    encoded = [(msg_id, subject, event.SerializeToString()) for subject, msg_id, event in items]
    rng = random.Random(3)
    batched_db, single_db = (Database(url, CUSTOMER_MIGRATIONS) for url in two_databases)
    try:
        for db in (batched_db, single_db):
            await db.migrate()
            await seed(db, SHAPE)
        batched_index, single_index = await fresh(batched_db), await fresh(single_db)

        # In batches of random sizes, a tenth of the messages delivered again.
        consumer = consumers(SimpleNamespace(db=batched_db, js=None))[0]
        assert consumer.sync_batch_handler is not None and consumer.stream == LEDGER_STREAM
        deliveries = list(encoded)
        for item in rng.sample(encoded, len(encoded) // 10):
            at = min(len(deliveries), encoded.index(item) + rng.randint(0, 400))
            deliveries.insert(at, item)
        applied = 0
        while deliveries:
            size = rng.choice([1, 7, 50, 256, 300])
            batch, deliveries = deliveries[:size], deliveries[size:]
            applied += sum(await consumer.apply_batch(batch))
        assert applied == len(encoded)  # every message once, every repeat recognised

        # One at a time, through the per-message handlers, in stream order.
        single = consumers(SimpleNamespace(db=single_db, js=None))[0]
        for start in range(0, len(items), 500):
            async with single_db.transaction() as session:
                for subject, _, event in items[start:start + 500]:
                    await single.handlers[subject](session, event)

        assert await projection(batched_db) == await projection(single_db)
        async with batched_db.read() as session:
            recorded = set(await session.scalars(select(ProcessedMessage.msg_id)))
        assert recorded == {msg_id for msg_id, _, _ in encoded}

        await follow_outbox(batched_db, batched_index, per_apply=1_000)
        await follow_outbox(single_db, single_index, per_apply=1)
        built = contents(await fresh(batched_db))
        assert contents(batched_index) == built
        assert contents(single_index) == contents(await fresh(single_db)) == built
    finally:
        await batched_db.dispose()
        await single_db.dispose()
