"""Raising alerts: a member's orders against a mall's rules, and what a firing rule writes.

Called by the order consumer (one member, every rule of the mall, in the consumer's transaction) and by
the background re-evaluation (many members, one rule). One alert per member and rule: the first trigger
opens it and publishes ``alert.alert.raised.v1`` through the outbox; a later trigger with orders the alert
did not hold yet adds them and moves its last trigger time; a trigger with nothing new changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.events.v1 import alert_events_pb2 as events
from services.alert.evaluation import Hit, Order, RuleSpec, condition_bits, conditions_of, evaluate, horizon_start
from services.alert.models import Alert, AlertOrder, MemberOrder, MemberView, OutboxEvent, WhitelistEntry
from services.alert.rules import RuleCache
from services.common.outbox import add_event
from services.common.validation import aware, to_timestamp

OPEN, WHITELISTED = pb.ALERT_STATE_OPEN, pb.ALERT_STATE_WHITELISTED


async def excluded_members(session: AsyncSession, member_ids: Sequence[str]) -> set[str]:
    """Those of ``member_ids`` who never raise alerts: whitelisted or virtual."""
    if not member_ids:
        return set()
    found = await session.scalars(union_all(
        select(WhitelistEntry.member_id).where(WhitelistEntry.member_id.in_(member_ids)),
        select(MemberView.member_id).where(MemberView.member_id.in_(member_ids), MemberView.virtual.is_(True))))
    return set(found.all())


async def member_orders(session: AsyncSession, mall_id: str, member_ids: Sequence[str],
                        since: datetime) -> dict[str, list[Order]]:
    rows = (await session.execute(
        select(MemberOrder.member_id, MemberOrder.order_id, MemberOrder.store_id, MemberOrder.paid_amount,
               MemberOrder.occur_time, MemberOrder.fully_refunded)
        .where(MemberOrder.member_id.in_(member_ids), MemberOrder.mall_id == mall_id,
               MemberOrder.occur_time >= since))).all()
    orders: dict[str, list[Order]] = defaultdict(list)
    for member_id, order_id, store_id, paid, occur, refunded in rows:
        orders[member_id].append(Order(order_id, store_id, paid, aware(occur), refunded))
    return orders


class Raiser:
    def __init__(self, cache: RuleCache) -> None:
        self.cache = cache

    async def evaluate_members(self, session: AsyncSession, mall_id: str, tz: ZoneInfo, rule: RuleSpec,
                               member_ids: Sequence[str], now: datetime) -> int:
        """One rule over many members (a re-evaluation batch); returns how many alerts opened."""
        skip = await excluded_members(session, member_ids)
        members = [m for m in member_ids if m not in skip]
        orders = await member_orders(session, mall_id, members, horizon_start(now, tz))
        fired = [(m, hits) for m in members if (hits := evaluate(rule, orders.get(m, ()), now, tz))]
        if not fired:
            return 0
        existing = {a.member_id: a for a in (await session.scalars(select(Alert).where(
            Alert.rule_id == rule.rule_id, Alert.member_id.in_([m for m, _ in fired])))).all()}
        held = await held_orders(session, [a.id for a in existing.values()])
        opened = 0
        for member_id, hits in fired:
            alert = existing.get(member_id)
            opened += (await record(session, mall_id, member_id, rule, hits, alert, now,
                                    held[alert.id] if alert else set()))[0]
        return opened


async def held_orders(session: AsyncSession, alert_ids: Sequence[int]) -> dict[int, set[tuple[int, str]]]:
    """The (condition, order) pairs each alert holds already."""
    held: dict[int, set[tuple[int, str]]] = defaultdict(set)
    if alert_ids:
        rows = await session.execute(select(AlertOrder.alert_id, AlertOrder.condition, AlertOrder.order_id)
                                     .where(AlertOrder.alert_id.in_(alert_ids)))
        for alert_id, condition, order_id in rows:
            held[alert_id].add((condition, order_id))
    return held


def _orders_of(alert_id: int, hits: Iterable[Hit]) -> dict[tuple[int, str], AlertOrder]:
    return {(h.condition, o.order_id): AlertOrder(alert_id=alert_id, condition=h.condition, order_id=o.order_id,
                                                  store_id=o.store_id, paid_amount=o.paid_amount,
                                                  occur_time=o.occur_time)
            for h in hits for o in h.orders}


async def record(session: AsyncSession, mall_id: str, member_id: str, rule: RuleSpec, hits: Sequence[Hit],
                 alert: Alert | None, now: datetime, held: set[tuple[int, str]]) -> tuple[int, Alert]:
    """Writes a trigger of ``rule`` for the member; returns 1 when it opened the alert (else 0), and the alert.

    ``held`` is the (condition, order) pairs the alert holds; it is kept up to date."""
    bits = condition_bits(hits)
    if alert is None:
        alert = Alert(mall_id=mall_id, member_id=member_id, rule_id=rule.rule_id, rule_name=rule.name,
                      conditions=bits, state=OPEN, first_triggered_at=now, last_triggered_at=now, order_count=0)
        session.add(alert)
        await session.flush()
        new = _orders_of(alert.id, hits)
        session.add_all(new.values())
        alert.order_count = len({order_id for _, order_id in new})
        held.update(new)
        _raised(session, alert, hits, now)
        return 1, alert
    new = {key: row for key, row in _orders_of(alert.id, hits).items() if key not in held}
    reopened = alert.state == WHITELISTED  # the member was taken off the whitelist since
    if not new and not reopened:
        return 0, alert
    session.add_all(new.values())
    held.update(new)
    alert.conditions |= bits
    alert.rule_name = rule.name
    alert.last_triggered_at = now
    alert.order_count = len({order_id for _, order_id in held})
    if reopened:
        alert.state = OPEN
        _raised(session, alert, hits, now)
        return 1, alert
    return 0, alert


def _raised(session: AsyncSession, alert: Alert, hits: Sequence[Hit], now: datetime) -> None:
    add_event(session, OutboxEvent, events.AlertRaised(
        alert_id=str(alert.id), mall_id=alert.mall_id, member_id=alert.member_id, rule_id=str(alert.rule_id),
        rule_name=alert.rule_name, conditions=[pb.ConditionKind.Name(c) for c in conditions_of(alert.conditions)],
        order_ids=sorted({o.order_id for h in hits for o in h.orders}), trigger_time=to_timestamp(now)))
