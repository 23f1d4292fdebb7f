"""Applying order events to the windows and the alerts, a run of events at a time.

``apply_orders`` takes order events in stream order (one, or a consumer's whole batch) and gives
exactly the result of applying them one by one: each recorded order is evaluated against the orders and
refunds that came before it. It runs in the caller's synchronous transaction (the consumer's
``run_sync_write``) and reads in bulk: the rules of each mall (cached per mall revision), who is excluded,
the members' 90 days of orders. It then evaluates in memory; a rule is evaluated in full only when the
member's orders reach one of its thresholds with no store scope at all (``evaluation.may_fire``), which
most orders of most members do not. Last it writes: the new orders and the refunds as bulk statements,
and the alerts the triggers opened or extended (``raising.record_triggers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.alert.evaluation import (
    HORIZON_DAYS,
    Order,
    evaluate,
    horizon_start,
    live,
    may_fire,
    reach,
    reaches_any,
)
from services.alert.models import MemberOrder
from services.alert.raising import Trigger, excluded_members, record_triggers
from services.alert.rules import MallRules, RuleCache
from services.common.bulk import insert_rows, update_rows
from services.common.chunks import IN_LIST, chunks
from services.common.validation import aware, from_timestamp

ONLINE = "ORDER_CHANNEL_ONLINE"
# An order older than this can never count again (the widest window is 90 days; a day's slack for time zones).
TOO_OLD = timedelta(days=HORIZON_DAYS + 1)
OrderEvent = ledger_events.OrderRecorded | ledger_events.OrderRefunded
MEMBER_ORDER: Table = MemberOrder.__table__  # type: ignore[assignment]  # a mapped class's table
_OCCUR_TIME = MEMBER_ORDER.c.occur_time.type
ORDER_COLUMNS = ("order_id", "member_id", "mall_id", "store_id", "paid_amount", "fully_refunded", "occur_time")


def apply_orders(session: Session, cache: RuleCache, events: Sequence[OrderEvent], now: datetime) -> int:
    """Applies the events in order; returns how many alerts opened."""
    oldest = now - TOO_OLD
    times: dict[int, datetime] = {}
    recorded: list[ledger_events.OrderRecorded] = []
    refunds: list[ledger_events.OrderRefunded] = []
    for e in events:
        if isinstance(e, ledger_events.OrderRecorded):
            when = times[id(e)] = from_timestamp(e.occur_time)
            if e.channel != ONLINE and e.member_id and e.mall_id and when >= oldest:
                recorded.append(e)
        else:
            refunds.append(e)
    opened = _evaluate(session, cache, events, recorded, times, now)
    conn = session.connection()
    # A recorded order already held (a republished event) stays as it is.
    insert_rows(conn, MEMBER_ORDER, ORDER_COLUMNS, [
        (e.order_id, e.member_id, e.mall_id, e.store_id, e.paid_amount, False, times[id(e)]) for e in recorded],
        skip_existing=True)
    # Refunds only lower sums: they never fire a rule and never close an alert. In order: an order refunded twice
    # in the run ends as the later refund leaves it.
    update_rows(conn, MEMBER_ORDER, ("paid_amount", "fully_refunded"), ("order_id",), [
        (max(e.order_paid_amount - e.total_refunded_paid_amount, 0), e.fully_refunded, e.order_id) for e in refunds])
    return opened


def read_windows(session: Session, members: Sequence[str], malls: Sequence[str], since: datetime,
                 skip: set[str]) -> dict[tuple[str, str], dict[str, Order]]:
    """The members' orders in these malls since ``since`` by (mall, member), leaving out the orders ``skip``.

    The rows are read with the driver's own cursor, all at once (every order of a batch's members: ten or so an
    order at 100,000 members and a million orders), without SQLAlchemy's per-row result processing."""
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    since_value = _OCCUR_TIME.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    bound_since = since_value(since) if since_value is not None else since
    windows: dict[tuple[str, str], dict[str, Order]] = {}
    cursor = conn.connection.cursor()
    try:
        for part in chunks(members, IN_LIST):
            cursor.execute(f"SELECT member_id, mall_id, order_id, store_id, paid_amount, occur_time, fully_refunded "
                           f"FROM member_order WHERE member_id IN ({', '.join([mark] * len(part))}) "
                           f"AND mall_id IN ({', '.join([mark] * len(malls))}) AND occur_time >= {mark}",
                           (*part, *malls, bound_since))
            for member_id, mall_id, order_id, store_id, paid, occur, refunded in cursor.fetchall():
                if order_id in skip:
                    continue
                window = windows.get((mall_id, member_id))
                if window is None:
                    window = windows[(mall_id, member_id)] = {}
                # SQLite keeps times as UTC text (as SQLAlchemy's DateTime writes them); PostgreSQL gives them aware.
                when = datetime.fromisoformat(occur + "+00:00") if sqlite else aware(occur)
                window[order_id] = Order(order_id, store_id, paid, when, bool(refunded))
    finally:
        cursor.close()
    return windows


def _evaluate(session: Session, cache: RuleCache, events: Sequence[OrderEvent],
              recorded: Sequence[ledger_events.OrderRecorded], times: dict[int, datetime], now: datetime) -> int:
    """Evaluates each recorded order in turn, on the orders (and refunds) before it; the run's own orders and
    refunds are not written yet, so what is read is the state before the run."""
    malls: dict[str, MallRules] = {}
    for mall_id in dict.fromkeys(e.mall_id for e in recorded):
        rules = cache.get(session, mall_id)
        if rules is not None and rules.rules:
            malls[mall_id] = rules
    watched = [e for e in recorded if e.mall_id in malls]
    if not watched:
        return 0
    members = sorted({e.member_id for e in watched})
    skip = excluded_members(session, members)
    members = [m for m in members if m not in skip]
    if not members:
        return 0
    new_ids = {e.order_id for e in recorded}
    # As they stood before this run: the run replays its own orders in turn.
    windows = read_windows(session, members, sorted(malls), now - TOO_OLD, new_ids)

    evaluated = set(members)
    horizons = {mall_id: horizon_start(now, mall.tz) for mall_id, mall in malls.items()}
    triggers: list[Trigger] = []
    for e in events:
        if isinstance(e, ledger_events.OrderRefunded):
            window = windows.get((e.mall_id, e.member_id))
            if window is not None and e.order_id in window:
                paid = max(e.order_paid_amount - e.total_refunded_paid_amount, 0)
                window[e.order_id] = window[e.order_id]._replace(fully_refunded=e.fully_refunded, paid_amount=paid)
            continue
        if e.member_id not in evaluated or e.mall_id not in malls or e.order_id not in new_ids:
            continue
        mall = malls[e.mall_id]
        window = windows.get((e.mall_id, e.member_id))
        if window is None:
            window = windows[(e.mall_id, e.member_id)] = {}
        window[e.order_id] = Order(e.order_id, e.store_id, e.paid_amount, times[id(e)])
        orders = live(window.values(), now, horizons[e.mall_id])
        reached = reach(orders)
        if not reaches_any(reached, mall.floor):
            continue
        for rule in mall.rules:
            if may_fire(rule, reached):
                hits = evaluate(rule, orders, now, mall.tz)
                if hits:
                    triggers.append(Trigger(e.mall_id, e.member_id, rule, hits))
    return record_triggers(session, triggers, now)
