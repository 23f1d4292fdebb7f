"""Applying order events to the windows and the alerts, a run of events at a time.

``apply_orders`` takes order events in stream order (one, or a consumer's whole batch) and gives
exactly the result of applying them one by one: each recorded order is evaluated against the orders and
refunds that came before it. It reads in bulk (the rules of each mall, the members' 90 days of orders,
who is excluded, the alerts and the orders they hold), evaluates in memory, and then writes: the new
orders in one statement, the refunds, and the alerts each trigger opened or extended.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.alert.evaluation import HORIZON_DAYS, Order, evaluate
from services.alert.models import Alert, MemberOrder
from services.alert.raising import excluded_members, held_orders, record
from services.alert.rules import MallRules, RuleCache
from services.common.db import dialect_of
from services.common.validation import aware

ONLINE = "ORDER_CHANNEL_ONLINE"
# An order older than this can never count again (the widest window is 90 days; a day's slack for time zones).
TOO_OLD = timedelta(days=HORIZON_DAYS + 1)
OrderEvent = ledger_events.OrderRecorded | ledger_events.OrderRefunded


async def apply_orders(session: AsyncSession, cache: RuleCache, events: Sequence[OrderEvent], now: datetime) -> int:
    """Applies the events in order; returns how many alerts opened."""
    recorded = [e for e in events if isinstance(e, ledger_events.OrderRecorded) and e.channel != ONLINE
                and e.member_id and e.mall_id and aware(e.occur_time.ToDatetime()) >= now - TOO_OLD]
    refunds = [e for e in events if isinstance(e, ledger_events.OrderRefunded)]
    if recorded:
        insert = postgresql_insert if dialect_of(session) == "postgresql" else sqlite_insert
        await session.execute(insert(MemberOrder).on_conflict_do_nothing(), [dict(
            order_id=e.order_id, member_id=e.member_id, mall_id=e.mall_id, store_id=e.store_id,
            paid_amount=e.paid_amount, fully_refunded=False, occur_time=aware(e.occur_time.ToDatetime()))
            for e in recorded])
    opened = await _evaluate(session, cache, events, recorded, now)
    for e in refunds:  # refunds only lower sums: they never fire a rule and never close an alert
        await session.execute(update(MemberOrder).where(MemberOrder.order_id == e.order_id).values(
            paid_amount=max(e.order_paid_amount - e.total_refunded_paid_amount, 0), fully_refunded=e.fully_refunded))
    return opened


async def _evaluate(session: AsyncSession, cache: RuleCache, events: Sequence[OrderEvent],
                    recorded: Sequence[ledger_events.OrderRecorded], now: datetime) -> int:
    """Evaluates each recorded order in turn, on the orders (and refunds) before it; the run's refunds are
    not written yet, so what is read is the state before the run."""
    malls: dict[str, MallRules] = {}
    for mall_id in dict.fromkeys(e.mall_id for e in recorded):
        rules = await cache.get(session, mall_id)
        if rules is not None and rules.rules:
            malls[mall_id] = rules
    watched = [e for e in recorded if e.mall_id in malls]
    if not watched:
        return 0
    members = sorted({e.member_id for e in watched})
    skip = await excluded_members(session, members)
    members = [m for m in members if m not in skip]
    if not members:
        return 0
    new_ids = {e.order_id for e in recorded}
    orders: dict[tuple[str, str], dict[str, Order]] = defaultdict(dict)
    rows = await session.execute(
        select(MemberOrder.member_id, MemberOrder.mall_id, MemberOrder.order_id, MemberOrder.store_id,
               MemberOrder.paid_amount, MemberOrder.occur_time, MemberOrder.fully_refunded)
        .where(MemberOrder.member_id.in_(members), MemberOrder.mall_id.in_(list(malls)),
               MemberOrder.occur_time >= now - TOO_OLD))
    for member_id, mall_id, order_id, store_id, paid, occur, refunded in rows:
        if order_id not in new_ids:  # as they stood before this run: the run replays its own orders in turn
            orders[(mall_id, member_id)][order_id] = Order(order_id, store_id, paid, aware(occur), refunded)
    rule_ids = [rule.rule_id for mall in malls.values() for rule in mall.rules]
    alerts = {(a.member_id, a.rule_id): a for a in (await session.scalars(select(Alert).where(
        Alert.member_id.in_(members), Alert.rule_id.in_(rule_ids)))).all()}
    held = await held_orders(session, [a.id for a in alerts.values()])

    evaluated = set(members)
    opened = 0
    for e in events:
        if isinstance(e, ledger_events.OrderRefunded):
            window = orders.get((e.mall_id, e.member_id))
            if window is not None and e.order_id in window:
                window[e.order_id] = replace(window[e.order_id], fully_refunded=e.fully_refunded,
                                             paid_amount=max(e.order_paid_amount - e.total_refunded_paid_amount, 0))
            continue
        if e.member_id not in evaluated or e.mall_id not in malls or e.order_id not in new_ids:
            continue
        mall = malls[e.mall_id]
        window = orders[(e.mall_id, e.member_id)]
        window[e.order_id] = Order(e.order_id, e.store_id, e.paid_amount, aware(e.occur_time.ToDatetime()))
        for rule in mall.rules:
            hits = evaluate(rule, window.values(), now, mall.tz)
            if not hits:
                continue
            alert = alerts.get((e.member_id, rule.rule_id))
            held_here = held[alert.id] if alert is not None else set()
            raised, alert = await record(session, e.mall_id, e.member_id, rule, hits, alert, now, held_here)
            opened += raised
            alerts[(e.member_id, rule.rule_id)] = alert
            held[alert.id] = held_here
    return opened
