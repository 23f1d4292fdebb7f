"""A batch of order events gives the alerts that applying them one at a time gives (the consumer's batched
mode hands the order handler a whole fetched batch in one transaction)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.alert.evaluation import Days, Order, evaluate
from services.alert.models import Alert, AlertOrder, AlertRule, MallView, StoreView
from services.alert.ordering import TOO_OLD, apply_orders
from services.alert.rules import RuleCache
from services.common.db import Database
from services.common.validation import from_timestamp, to_timestamp


async def test_batches_raise_what_one_at_a_time_raises(database_url):
    db = Database(database_url, Path("services/alert/migrations"))
    await db.migrate()
    rng = random.Random(5)
    now = datetime.now(UTC)
    try:
        async with db.transaction() as session:
            for mall_id in ("1", "2"):  # two identical malls: one fed event by event, the other in batches
                session.add(MallView(mall_id=mall_id, name=f"商场{mall_id}", timezone="Asia/Shanghai", deleted=False,
                                     revision=1))
                for s in range(4):
                    session.add(StoreView(store_id=f"{mall_id}{s}", mall_id=mall_id, name="店", category="",
                                          business_format="", floor="", tags=["t"] if s < 2 else [], deleted=False))
                for name, kind, values, extra in [
                    ("single", pb.STORE_SCOPE_KIND_ALL, [], dict(single_enabled=True, single_min_paid=5_000)),
                    ("store", pb.STORE_SCOPE_KIND_TAG, ["t"], dict(any_enabled=True, any_days=3, any_min_count=3)),
                    ("total", pb.STORE_SCOPE_KIND_ALL, [], dict(total_enabled=True, total_days=10,
                                                                total_min_paid=12_000))]:
                    session.add(AlertRule(mall_id=mall_id, name=name, scope_kind=kind, scope_values=values,
                                          creator_id="t", created_at=now, editor_id="t", updated_at=now, version=1,
                                          eval_state=pb.EVALUATION_STATE_DONE, eval_version=1, eval_total=0,
                                          eval_done=0, eval_raised=0, eval_cursor="", **extra))
        events: list[tuple[str, ledger_events.OrderRecorded | ledger_events.OrderRefunded]] = []
        placed = []
        for i in range(400):
            member, store = str(rng.randrange(25)), str(rng.randrange(4))
            paid = rng.choice([500, 2_000, 4_000, 6_000])
            when = to_timestamp(now - timedelta(days=rng.choice([0, 1, 2, 5, 9, 20]), hours=rng.uniform(0, 20)))
            events.append(("o", ledger_events.OrderRecorded(order_id=f"{i}", member_id=member, store_id=store,
                                                            channel="ORDER_CHANNEL_POS", paid_amount=paid,
                                                            occur_time=when)))
            placed.append((f"{i}", member, store, paid))
            if rng.random() < 0.2:
                oid, m, s, p = rng.choice(placed)
                full = rng.random() < 0.5
                events.append(("r", ledger_events.OrderRefunded(
                    order_id=oid, member_id=m, store_id=s, order_paid_amount=p,
                    total_refunded_paid_amount=p if full else p // 3, fully_refunded=full)))

        def for_mall(mall_id: str, event):
            copy = type(event)()
            copy.CopyFrom(event)
            copy.mall_id = mall_id
            copy.order_id = f"{mall_id}-{event.order_id}"
            copy.store_id = f"{mall_id}{event.store_id}"
            return copy

        cache = RuleCache()
        for _, event in events:
            one = [for_mall("1", event)]
            await db.run_sync_write(lambda session: apply_orders(session, cache, one, now))  # noqa: B023 - awaited at once
        start = 0
        while start < len(events):
            size = rng.choice([1, 7, 30, 100])
            run = [for_mall("2", e) for _, e in events[start:start + size]]
            await db.run_sync_write(lambda session: apply_orders(session, cache, run, now))  # noqa: B023 - awaited at once
            start += size

        async with db.read() as session:
            rules = {r.id: r.name for r in (await session.scalars(select(AlertRule))).all()}
            result: dict[str, dict] = {"1": {}, "2": {}}
            for alert in (await session.scalars(select(Alert))).all():
                orders = (await session.scalars(select(AlertOrder).where(AlertOrder.alert_id == alert.id))).all()
                result[alert.mall_id][(alert.member_id, rules[alert.rule_id])] = (
                    alert.conditions, alert.order_count,
                    {(o.condition, o.order_id.split("-")[1], o.paid_amount) for o in orders})
        assert result["1"] and result["1"] == result["2"]
    finally:
        await db.dispose()


async def test_batches_raise_what_evaluating_every_order_in_full_raises(database_url):
    """The order handler evaluates a member's orders only when an upper bound of what they reach (summed up by the
    database) reaches a rule's lowest threshold: the alerts are those of evaluating every rule on every order's
    whole window, with nothing passed over. A mall per rule, so each kind of threshold is the only one there."""
    db = Database(database_url, Path("services/alert/migrations"))
    await db.migrate()
    rng = random.Random(23)
    now = datetime.now(UTC)
    tz = ZoneInfo("Asia/Shanghai")
    rules = [
        ("single", pb.STORE_SCOPE_KIND_ALL, [], dict(single_enabled=True, single_min_paid=9_000)),
        ("store count", pb.STORE_SCOPE_KIND_TAG, ["t"], dict(any_enabled=True, any_days=3, any_min_count=2)),
        ("store paid", pb.STORE_SCOPE_KIND_STORES, ["0", "3"], dict(any_enabled=True, any_days=7, any_min_paid=9_500)),
        ("total count", pb.STORE_SCOPE_KIND_ALL, [], dict(total_enabled=True, total_days=10, total_min_count=6)),
        ("total paid", pb.STORE_SCOPE_KIND_TAG, ["t"], dict(total_enabled=True, total_days=30,
                                                            total_min_paid=16_000))]
    malls = [str(m + 1) for m in range(len(rules))]
    try:
        async with db.transaction() as session:
            for mall_id, (name, kind, values, extra) in zip(malls, rules, strict=True):
                session.add(MallView(mall_id=mall_id, name="商场", timezone="Asia/Shanghai", deleted=False, revision=1))
                for s in range(5):
                    session.add(StoreView(store_id=f"{mall_id}{s}", mall_id=mall_id, name="店", category="",
                                          business_format="", floor="", tags=["t"] if s < 3 else [], deleted=False))
                session.add(AlertRule(mall_id=mall_id, name=name, scope_kind=kind,
                                      scope_values=[f"{mall_id}{v}" for v in values] if values and kind ==
                                      pb.STORE_SCOPE_KIND_STORES else values, creator_id="t", created_at=now,
                                      editor_id="t", updated_at=now, version=1, eval_state=pb.EVALUATION_STATE_DONE,
                                      eval_version=1, eval_total=0, eval_done=0, eval_raised=0, eval_cursor="",
                                      **extra))
        base: list[ledger_events.OrderRecorded | ledger_events.OrderRefunded] = []
        placed: list[tuple[str, str, str, int]] = []
        for i in range(500):
            member, store = str(rng.randrange(120)), str(rng.randrange(5))
            paid = rng.choice([0, 700, 1_500, 3_000, 4_500, 9_000, -600])  # a negative amount, which no ledger sends
            when = to_timestamp(now - timedelta(days=rng.choice([0, 1, 2, 4, 6, 9, 25, 95]), hours=rng.uniform(0, 20)))
            base.append(ledger_events.OrderRecorded(order_id=str(i), member_id=member, store_id=store,
                                                    channel="ORDER_CHANNEL_POS", paid_amount=paid, occur_time=when))
            placed.append((str(i), member, store, paid))
            if rng.random() < 0.15:
                oid, m, s, p = rng.choice(placed)
                full = rng.random() < 0.4
                base.append(ledger_events.OrderRefunded(
                    order_id=oid, member_id=m, store_id=s, order_paid_amount=p,
                    total_refunded_paid_amount=p if full else p // 3, fully_refunded=full))
        events = []
        for event in base:
            for mall_id in malls:  # the same orders in every mall, interleaved
                copy = type(event)()
                copy.CopyFrom(event)
                copy.mall_id, copy.order_id, copy.store_id = mall_id, f"{mall_id}-{event.order_id}", \
                    f"{mall_id}{event.store_id}"
                events.append(copy)

        cache = RuleCache()
        start = 0
        while start < len(events):
            size = rng.choice([1, 5, 40, 150])
            run = events[start:start + size]
            await db.run_sync_write(lambda session: apply_orders(session, cache, run, now))  # noqa: B023 - awaited at once
            start += size

        # The reference: every rule on every recorded order's window (its member's orders and refunds before it).
        specs = {}
        for mall_id in malls:
            found = await db.run_sync_read(lambda session: cache.get(session, mall_id))  # noqa: B023 - awaited at once
            assert found is not None
            specs[mall_id] = found.rules
        windows: dict[tuple[str, str], dict[str, Order]] = {}
        expected: dict[tuple[str, str], set[tuple[int, str]]] = {}
        for e in events:
            if isinstance(e, ledger_events.OrderRefunded):
                for window in windows.values():
                    if e.order_id in window:
                        window[e.order_id] = window[e.order_id]._replace(
                            paid_amount=max(e.order_paid_amount - e.total_refunded_paid_amount, 0),
                            fully_refunded=e.fully_refunded)
                continue
            when = from_timestamp(e.occur_time)
            if when < now - TOO_OLD:
                continue  # never counts again, and is not kept
            window = windows.setdefault((e.mall_id, e.member_id), {})
            window[e.order_id] = Order(e.order_id, e.store_id, e.paid_amount, when)
            for rule in specs[e.mall_id]:
                for hit in evaluate(rule, window.values(), Days(now, tz)):
                    expected.setdefault((e.member_id, rule.name), set()).update(
                        (hit.condition, o.order_id) for o in hit.orders)

        async with db.read() as session:
            names = {r.id: r.name for r in (await session.scalars(select(AlertRule))).all()}
            held: dict[tuple[str, str], set[tuple[int, str]]] = {}
            for alert in (await session.scalars(select(Alert))).all():
                orders = (await session.scalars(select(AlertOrder).where(AlertOrder.alert_id == alert.id))).all()
                held[(alert.member_id, names[alert.rule_id])] = {(o.condition, o.order_id) for o in orders}
                assert alert.order_count == len({o.order_id for o in orders})
        assert {name for _, name in expected} == set(names.values())  # every rule fired for someone
        assert held == expected
    finally:
        await db.dispose()
