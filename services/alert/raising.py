"""Raising alerts: what the rules that fired for members write, in the caller's (synchronous) transaction.

Used by the order consumer (the triggers of a batch of orders, every rule of each mall) and by the background
re-evaluation (many members, one rule). One alert per member and rule: the first trigger opens it and
publishes ``alert.alert.raised.v1`` through the outbox; a later trigger with orders the alert did not hold
yet adds them and moves its last trigger time; a trigger with nothing new changes nothing.

The triggers are first gathered in memory; ``record_triggers`` then reads the alerts they touch and the
orders those hold once (locking the alerts on PostgreSQL, since whitelisting and disabling write them
too), applies the triggers in order, and writes the outcome as bulk rows: the new alerts, their orders,
the changed alerts and the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.orm import Session

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.events.v1 import alert_events_pb2 as events
from services.alert.evaluation import Hit, Order, RuleSpec, condition_bits, conditions_of
from services.alert.models import Alert, AlertOrder, MemberView, OutboxEvent, WhitelistEntry
from services.common.bulk import allocate_ids, insert_rows, update_rows
from services.common.chunks import IN_LIST, chunks, padded
from services.common.outbox import add_events
from services.common.validation import to_timestamp

OPEN, WHITELISTED = pb.ALERT_STATE_OPEN, pb.ALERT_STATE_WHITELISTED
ALERT: Table = Alert.__table__  # type: ignore[assignment]  # a mapped class's table
ALERT_ORDER: Table = AlertOrder.__table__  # type: ignore[assignment]  # a mapped class's table
ALERT_COLUMNS = ("id", "mall_id", "member_id", "rule_id", "rule_name", "conditions", "state", "first_triggered_at",
                 "last_triggered_at", "order_count")
ALERT_CHANGES = ("rule_name", "conditions", "state", "last_triggered_at", "order_count")
ALERT_ORDER_COLUMNS = ("alert_id", "condition", "order_id", "store_id", "paid_amount", "occur_time")


def excluded_members(session: Session, member_ids: Sequence[str]) -> set[str]:
    """Those of ``member_ids`` who never raise alerts: whitelisted or virtual.

    Read with the driver's cursor: a batch's few hundred members as an IN list cost SQLAlchemy more to expand
    and bind than the database to answer."""
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    virtual = conn.dialect.identifier_preparer.quote("virtual")
    found: set[str] = set()
    cursor = conn.connection.cursor()
    try:
        for part in chunks(member_ids, IN_LIST):
            marks = ", ".join([mark] * len(part))
            cursor.execute(f"SELECT member_id FROM {WhitelistEntry.__tablename__} WHERE member_id IN ({marks}) "
                           f"UNION ALL SELECT member_id FROM {MemberView.__tablename__} "
                           f"WHERE member_id IN ({marks}) AND {virtual}",
                           (*part, *part))
            found.update(member_id for member_id, in cursor.fetchall())
    finally:
        cursor.close()
    return found


@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule that fired for a member, with what fired."""

    mall_id: str
    member_id: str
    rule: RuleSpec
    hits: Sequence[Hit]


@dataclass(slots=True, eq=False)
class _Alert:
    """An alert as the triggers leave it; ``id`` None until a new one is given its id. Its trigger times are not
    read: a new alert's both, and a changed alert's last, are the batch's ``now``."""

    id: int | None
    mall_id: str
    member_id: str
    rule_id: int
    rule_name: str
    conditions: int
    state: int
    order_count: int
    held: set[tuple[int, str]] = field(default_factory=set)
    changed: bool = False  # an alert that was there before, to update


def _alerts(session: Session, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], _Alert]:
    """The alerts of these (member, rule) pairs, locked, with the (condition, order) pairs they hold.

    Read with the driver's cursor, the lists padded (``chunks.padded``) so that the database reuses its statement:
    a batch's hundred or so members as an expanding IN list cost SQLAlchemy more to render and bind than the
    database to answer (about 4 us an order applied, at a million orders)."""
    members = sorted({m for m, _ in pairs})
    rules = padded(sorted({r for _, r in pairs}))
    found: dict[tuple[str, int], _Alert] = {}
    by_id: dict[int, _Alert] = {}
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""  # SQLite's writer holds the only write lock
    rule_marks = ", ".join([mark] * len(rules))
    cursor = conn.connection.cursor()
    try:
        for part in chunks(members, IN_LIST):
            part = padded(part)
            cursor.execute(f"SELECT id, mall_id, member_id, rule_id, rule_name, conditions, state, order_count "
                           f"FROM {ALERT.name} WHERE member_id IN ({', '.join([mark] * len(part))}) "
                           f"AND rule_id IN ({rule_marks}) ORDER BY id{lock}", (*part, *rules))
            for row in cursor.fetchall():
                if (row[2], row[3]) in pairs:
                    found[(row[2], row[3])] = by_id[row[0]] = _Alert(*row)
        for ids in chunks(sorted(by_id), IN_LIST):
            ids = padded(ids)
            cursor.execute(f"SELECT alert_id, condition, order_id FROM {ALERT_ORDER.name} "
                           f"WHERE alert_id IN ({', '.join([mark] * len(ids))})", ids)
            for alert_id, condition, order_id in cursor.fetchall():
                by_id[alert_id].held.add((condition, order_id))
    finally:
        cursor.close()
    return found


def record_triggers(session: Session, triggers: Sequence[Trigger], now: datetime) -> int:
    """Writes the triggers, in order, as of ``now``; returns how many alerts they opened (or reopened)."""
    if not triggers:
        return 0
    alerts = _alerts(session, {(t.member_id, t.rule.rule_id) for t in triggers})
    made: list[_Alert] = []
    orders: list[tuple[_Alert, int, Order]] = []
    raised: list[tuple[_Alert, int, str, list[str]]] = []  # the alert, its conditions and name then, the orders
    for t in triggers:
        key = (t.member_id, t.rule.rule_id)
        alert = alerts.get(key)
        pairs = {(h.condition, o.order_id): o for h in t.hits for o in h.orders}
        bits = condition_bits(t.hits)
        if alert is None:
            alert = alerts[key] = _Alert(None, t.mall_id, t.member_id, t.rule.rule_id, t.rule.name, bits, OPEN, 0)
            made.append(alert)
            new = pairs
        else:
            new = {k: o for k, o in pairs.items() if k not in alert.held}
            reopened = alert.state == WHITELISTED  # the member was taken off the whitelist since
            if not new and not reopened:
                continue
            alert.conditions |= bits
            alert.rule_name = t.rule.name
            alert.changed = alert.id is not None
            if not reopened:
                alert.held.update(new)
                alert.order_count = len({order_id for _, order_id in alert.held})
                orders += [(alert, condition, o) for (condition, _), o in new.items()]
                continue
            alert.state = OPEN
        alert.held.update(new)
        alert.order_count = len({order_id for _, order_id in alert.held})
        orders += [(alert, condition, o) for (condition, _), o in new.items()]
        raised.append((alert, alert.conditions, alert.rule_name, sorted({o.order_id for o in pairs.values()})))

    conn = session.connection()
    for alert, alert_id in zip(made, allocate_ids(session, {ALERT: len(made)})[ALERT], strict=True):
        alert.id = alert_id
    insert_rows(conn, ALERT, ALERT_COLUMNS, [
        (a.id, a.mall_id, a.member_id, a.rule_id, a.rule_name, a.conditions, a.state, now, now, a.order_count)
        for a in made])
    update_rows(conn, ALERT, ALERT_CHANGES, ("id",), [
        (a.rule_name, a.conditions, a.state, now, a.order_count, a.id)
        for a in alerts.values() if a.changed])
    insert_rows(conn, ALERT_ORDER, ALERT_ORDER_COLUMNS, [
        (a.id, condition, o.order_id, o.store_id, o.paid_amount, o.occur_time) for a, condition, o in orders])
    add_events(conn, OutboxEvent, [events.AlertRaised(
        alert_id=str(a.id), mall_id=a.mall_id, member_id=a.member_id, rule_id=str(a.rule_id), rule_name=name,
        conditions=[pb.ConditionKind.Name(c) for c in conditions_of(bits)], order_ids=order_ids,
        trigger_time=to_timestamp(now)) for a, bits, name, order_ids in raised])
    return len(raised)
