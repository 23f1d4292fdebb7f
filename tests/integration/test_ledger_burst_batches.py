"""A burst of 10,000 ledger events applied in batches, with duplicates, ends where the same events one at a time end.

Mixed events (orders, partial and full refunds, point and balance postings and batch postings, settlements,
vouchers, late entries, unknown members, bursts for a few members) about a few hundred members in six malls.
Two customer databases and two alert databases take them:

- batched: each service's ledger consumer takes them as JetStream would hand them over (``apply_batch``, the
  consumer's batched transaction): batches of random sizes, about a tenth of the messages delivered a second
  time (in the same batch or up to 400 messages later, never before their first delivery) and some whole
  batches delivered again (the commit went through, the ack was lost). The alert consumer gets the order
  subjects only, as its filter asks, in batches of its own sizes.
- one at a time: each consumer's own handler (``sync_batch_handler``) on a batch of one event, event after event
  in stream order, each on what the events before it wrote (what the per-message handlers do).

Then both customer databases hold the same statistics, levels, orders, interaction malls, member attributes and
timeline; a crowd index following each one's customer events (coalesced per batch of 1,000 on the batched side,
ten events at a time on the other) equals a fresh build and the other; and both alert databases hold the same
member order windows, the same alerts with the same orders behind them and the same ``alert.raised`` events,
with the alert service's clock fixed so that "the last D days" is the same day in both runs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.events.v1 import alert_events_pb2 as alert_events
from services.alert import models as alert_models
from services.alert.consumers import order_consumer
from services.alert.rules import RuleCache
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.events import LEDGER_STREAM, ORDER_RECORDED, ORDER_REFUNDED
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
from tests.support.ledger_burst import NOW, Shape, burst, seed

# About 17 CPU-seconds on SQLite and 33 on PostgreSQL (26 s and 86 s of wall time on a quiet machine), most of it
# the one-at-a-time reference (10,000 applications of the projection and 5,517 of the alert windows, each reading
# what it needs); on a loaded machine the wall time is several times that, hence the longer timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CUSTOMER_MIGRATIONS = Path("services/customer/migrations")
ALERT_MIGRATIONS = Path("services/alert/migrations")
SHAPE = Shape(members=400, tags=40, stores=20, malls=6, groups=3)
EVENTS = 10_000  # the burst
ORDER_SUBJECTS = (ORDER_RECORDED, ORDER_REFUNDED)
Message = tuple[str, str, bytes]  # msg id, subject, data

# The alert rules of every mall but the last (whose orders are kept in the windows and never evaluated).
RULES = [
    ("big order", pb.STORE_SCOPE_KIND_ALL, [], {"single_enabled": True, "single_min_paid": 80_000}),
    ("regular", pb.STORE_SCOPE_KIND_TAG, ["vip"], {"any_enabled": True, "any_days": 60, "any_min_count": 2}),
    ("food spender", pb.STORE_SCOPE_KIND_CATEGORY, ["food"],
     {"total_enabled": True, "total_days": 30, "total_min_count": 3, "total_min_paid": 60_000}),
]
VIRTUAL, WHITELISTED = ("5", "17"), ("9",)  # busy members who never raise alerts


def fetches(messages: Sequence[Message], rng: random.Random, sizes: Sequence[int]) -> list[list[Message]]:
    """What a consumer fetches: the messages in stream order, about a tenth of them delivered again up to 400
    messages later, cut into batches of random sizes, one batch in twenty delivered again whole."""
    keyed = [(i, 0, m) for i, m in enumerate(messages)]
    keyed += [(i + rng.randint(0, 400), 1, messages[i]) for i in rng.sample(range(len(messages)), len(messages) // 10)]
    keyed.sort(key=lambda k: (k[0], k[1]))  # a repeat after its first delivery
    flat = [m for _, _, m in keyed]
    batches: list[list[Message]] = []
    while flat:
        size = rng.choice(sizes)
        batches.append(flat[:size])
        flat = flat[size:]
        if rng.random() < 0.05:
            batches.append(batches[-1])
    return batches


async def deliver(consumer: EventConsumer, batches: Sequence[Sequence[Message]]) -> int:
    """Each batch through the consumer's batched transaction; returns how many messages were applied."""
    applied = 0
    for batch in batches:
        applied += sum(await consumer.apply_batch(batch))
    return applied


async def one_at_a_time(db: Database, consumer: EventConsumer, items: Sequence[tuple[str, object]]) -> None:
    """The consumer's handler on one event at a time, in stream order (a transaction per 500 events)."""
    handler = consumer.sync_batch_handler
    assert handler is not None
    for start in range(0, len(items), 500):
        part = items[start:start + 500]

        def each(session, part=part) -> None:
            for subject, event in part:
                handler(session, [(subject, event)])

        await db.run_sync_write(each)


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


async def seed_alerts(db: Database, shape: Shape, now: datetime) -> None:
    """The alert service's view of the same malls (one in another time zone) and stores (some tagged "vip", some
    in "food", in every mall), two virtual members and a whitelisted one, and the rules."""
    async with db.transaction() as session:
        await session.execute(insert(alert_models.MallView), [
            {"mall_id": str(m), "name": f"mall{m}", "timezone": "Europe/London" if m == 2 else "Asia/Shanghai",
             "deleted": False, "revision": 1} for m in range(1, shape.malls + 1)])
        await session.execute(insert(alert_models.StoreView), [
            {"store_id": str(s), "mall_id": str(1 + s % shape.malls), "name": f"store{s}",
             "category": "food" if s % 5 < 3 else "retail", "business_format": "", "floor": "1F",
             "tags": ["vip"] if s % 4 < 2 else [], "deleted": False} for s in range(1, shape.stores + 1)])
        await session.execute(insert(alert_models.MemberView), [
            {"member_id": m, "virtual": True, "disabled": False, "store_member": False, "deleted": False}
            for m in VIRTUAL])
        await session.execute(insert(alert_models.WhitelistEntry), [
            {"member_id": m, "reason": "", "operator_id": "t", "created_at": now} for m in WHITELISTED])
        await session.execute(insert(alert_models.AlertRule), [
            {"mall_id": str(m), "name": name, "scope_kind": kind, "scope_values": values, "creator_id": "t",
             "created_at": now, "editor_id": "t", "updated_at": now, "version": 1,
             "eval_state": pb.EVALUATION_STATE_DONE, "eval_version": 1, "eval_total": 0, "eval_done": 0,
             "eval_raised": 0, "eval_cursor": "", **conditions}
            for m in range(1, shape.malls) for name, kind, values, conditions in RULES])


async def alert_state(db: Database) -> dict:
    """The alert service's windows, alerts (by mall, member and rule), the orders behind them, and the raised
    events, in a comparable form."""
    m = alert_models
    async with db.read() as session:
        windows = [tuple(r) for r in await session.execute(
            select(*m.MemberOrder.__table__.columns).order_by(m.MemberOrder.order_id))]
        alerts = {a.id: a for a in await session.scalars(select(m.Alert))}
        key = {a.id: (a.mall_id, a.member_id, a.rule_name) for a in alerts.values()}
        held = sorted((key[o.alert_id], o.condition, o.order_id, o.store_id, o.paid_amount, o.occur_time)
                      for o in await session.scalars(select(m.AlertOrder)))
        raised = []
        for payload in await session.scalars(select(m.OutboxEvent.payload).order_by(m.OutboxEvent.seq)):
            event = alert_events.AlertRaised.FromString(payload)
            raised.append((key[int(event.alert_id)], tuple(event.conditions), tuple(event.order_ids),
                           event.trigger_time.ToDatetime()))
    return {"windows": windows, "raised": raised, "held": held,
            "alerts": sorted((key[a.id], a.conditions, a.state, a.order_count, a.first_triggered_at,
                              a.last_triggered_at) for a in alerts.values())}


@pytest.fixture
def four_databases(backend, databases, tmp_path):
    with ExitStack() as stack:
        yield [stack.enter_context(databases.fresh(backend, tmp_path, name=name, service=service))
               for name, service in (("batched", "customer"), ("single", "customer"),
                                     ("alert_batched", "alert"), ("alert_single", "alert"))]


async def test_a_burst_in_batches_with_duplicates_equals_the_same_burst_one_event_at_a_time(four_databases):
    items = burst(SHAPE, EVENTS, hot_members=25)
    encoded = [(msg_id, subject, event.SerializeToString()) for subject, msg_id, event in items]
    rng = random.Random(3)
    batched_db, single_db = (Database(url, CUSTOMER_MIGRATIONS) for url in four_databases[:2])
    alert_batched_db, alert_single_db = (Database(url, ALERT_MIGRATIONS) for url in four_databases[2:])
    try:
        for db in (batched_db, single_db):
            await seed(db, SHAPE)
        for db in (alert_batched_db, alert_single_db):
            await seed_alerts(db, SHAPE, NOW)
        batched_index, single_index = await fresh(batched_db), await fresh(single_db)

        # The customer service's consumer: every message applied once, every repeat recognised.
        consumer = consumers(SimpleNamespace(db=batched_db, js=None))[0]
        assert consumer.stream == LEDGER_STREAM
        assert await deliver(consumer, fetches(encoded, rng, [1, 7, 50, 256, 300])) == len(encoded)
        await one_at_a_time(single_db, consumers(SimpleNamespace(db=single_db, js=None))[0],
                            [(subject, event) for subject, _, event in items])

        assert await projection(batched_db) == await projection(single_db)
        async with batched_db.read() as session:
            recorded = set(await session.scalars(select(ProcessedMessage.msg_id)))
        assert recorded == {msg_id for msg_id, _, _ in encoded}

        await follow_outbox(batched_db, batched_index, per_apply=1_000)
        await follow_outbox(single_db, single_index, per_apply=10)
        built = contents(await fresh(batched_db))
        assert contents(batched_index) == built
        assert contents(single_index) == contents(await fresh(single_db)) == built

        # The alert service's consumer, its clock fixed at the burst's "now".
        orders = [m for m in encoded if m[1] in ORDER_SUBJECTS]
        alert_consumer = order_consumer(alert_batched_db, None, RuleCache(), clock=lambda: NOW)  # type: ignore[arg-type]  # no JetStream: fed directly
        assert alert_consumer.stream == LEDGER_STREAM and set(alert_consumer.handlers) == set(ORDER_SUBJECTS)
        assert await deliver(alert_consumer, fetches(orders, rng, [1, 7, 50, 300, 500])) == len(orders)
        await one_at_a_time(alert_single_db, order_consumer(alert_single_db, None, RuleCache(), clock=lambda: NOW),  # type: ignore[arg-type]  # no JetStream
                            [(subject, event) for subject, _, event in items if subject in ORDER_SUBJECTS])

        batched, single = await alert_state(alert_batched_db), await alert_state(alert_single_db)
        assert batched == single
        # The comparison is not of empty states: every rule raised alerts, in every mall with rules; the
        # excluded members' orders are in the windows, and they have no alerts.
        assert len(batched["windows"]) > 3_000
        assert {(mall, rule) for (mall, _, rule), *_ in batched["alerts"]} == {
            (str(m), name) for m in range(1, SHAPE.malls) for name, *_ in RULES}
        members = {member for (_, member, _), *_ in batched["alerts"]}
        assert members.isdisjoint({*VIRTUAL, *WHITELISTED})
        assert {*VIRTUAL, *WHITELISTED} <= {row[1] for row in batched["windows"]}
        assert len(batched["raised"]) == len(batched["alerts"])
        async with alert_batched_db.read() as session:
            recorded = set(await session.scalars(select(alert_models.ProcessedMessage.msg_id)))
        assert recorded == {msg_id for msg_id, _, _ in orders}
    finally:
        for db in (batched_db, single_db, alert_batched_db, alert_single_db):
            await db.dispose()
