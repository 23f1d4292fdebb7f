"""Applying order events to the windows and the alerts, a run of events at a time.

``apply_orders`` takes order events in stream order (one, or a consumer's whole batch) and gives
exactly the result of applying them one by one: each recorded order is evaluated against the orders and
refunds that came before it. It runs in the caller's synchronous transaction (the consumer's
``run_sync_write``) and reads in bulk: the rules of each mall (cached per mall revision), who is excluded,
what the members' 90 days of orders add up to. A member's orders are read and evaluated in full only when
an upper bound of what they reach (``read_bounds``: one row a member, counted by the database, plus the
run's own orders) reaches the lowest threshold of one of the mall's rules (``evaluation.reaches_any``),
which most orders of most members do not; a member with a refund in the run is read in full as well.
Those members' orders are then evaluated as before: a rule in full only when the orders reach one of its
thresholds with no store scope at all (``evaluation.may_fire``). Last it writes: the new orders and the
refunds as bulk statements, and the alerts the triggers opened or extended (``raising.record_triggers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

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
    # A recorded order already held (a republished event) stays as it is, and so does the first of an order recorded
    # twice in the run. In window index order (member, mall, time): each insert goes down next to the one before.
    first = {e.order_id: e for e in reversed(recorded)}
    rows = [(e.order_id, e.member_id, e.mall_id, e.store_id, e.paid_amount, False, times[id(e)])
            for e in first.values()]
    rows.sort(key=lambda row: (row[1], row[2], row[6]))
    insert_rows(conn, MEMBER_ORDER, ORDER_COLUMNS, rows, skip_existing=True)
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


# Between the stores of a member's orders as ``read_bounds`` reads them: a character no store id holds (a store id
# that holds it has its orders read in full).
STORE_SEPARATOR = "\x1f"


class Bound(NamedTuple):
    """Upper bounds of what a member's orders in a mall reach (``evaluation.Reach``), as the database holds them:
    the orders since ``since`` that are not fully refunded, however many of them are in the future."""

    order_count: int
    paid: int  # positive amounts only, as ``evaluation.reach`` counts them
    max_paid: int
    store_count: int  # the most orders at one store
    store_paid: int  # the highest sum at one store, at most: the largest amount when no store has two orders, else all
    stores: list[str]  # the store of each order


def read_bounds(session: Session, members: Sequence[str], malls: Sequence[str],
                since: datetime) -> dict[tuple[str, str], Bound]:
    """``Bound`` of each of the members' orders in these malls since ``since``, by (mall, member); a member with
    none is left out.

    One row a member, summed up from the window index: no order made in Python, and a tenth of the rows
    ``read_windows`` gives at a million orders."""
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    since_value = _OCCUR_TIME.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    bound_since = since_value(since) if since_value is not None else since
    positive = "CASE WHEN paid_amount > 0 THEN paid_amount ELSE 0 END"
    concat = "group_concat(store_id, char(31))" if conn.dialect.name == "sqlite" else "string_agg(store_id, chr(31))"
    bounds: dict[tuple[str, str], Bound] = {}
    cursor = conn.connection.cursor()
    try:
        for part in chunks(members, IN_LIST):
            cursor.execute(f"SELECT member_id, mall_id, count(*), sum({positive}), max({positive}), {concat} "
                           f"FROM member_order WHERE member_id IN ({', '.join([mark] * len(part))}) "
                           f"AND mall_id IN ({', '.join([mark] * len(malls))}) AND occur_time >= {mark} "
                           f"AND NOT fully_refunded GROUP BY member_id, mall_id",
                           (*part, *malls, bound_since))
            for member_id, mall_id, count, paid, max_paid, concatenated in cursor.fetchall():
                stores = concatenated.split(STORE_SEPARATOR)
                distinct = set(stores)
                paid, max_paid = int(paid), int(max_paid)  # PostgreSQL sums to numeric
                if len(distinct) == len(stores):
                    bounds[(mall_id, member_id)] = Bound(count, paid, max_paid, 1, max_paid, stores)
                else:
                    bounds[(mall_id, member_id)] = Bound(count, paid, max_paid, max(map(stores.count, distinct)),
                                                         paid, stores)
    finally:
        cursor.close()
    return bounds


NO_ORDERS = Bound(0, 0, 0, 0, 0, [])


class _Running:
    """A member's bound in a mall as the run's orders raise it, one order at a time."""

    __slots__ = ("order_count", "paid", "max_paid", "store_count", "store_paid", "stores", "at_store",
                 "most_paid_at_store")

    def __init__(self, b: Bound) -> None:
        self.order_count, self.paid, self.max_paid = b.order_count, b.paid, b.max_paid
        self.store_count, self.store_paid, self.stores = b.store_count, b.store_paid, b.stores
        self.at_store: dict[str, tuple[int, int]] = {}  # the run's orders and their sum, by store
        self.most_paid_at_store = 0  # the highest of those sums


def _to_read(events: Sequence[OrderEvent], bounds: dict[tuple[str, str], Bound], malls: dict[str, MallRules],
             members: set[str], new_ids: set[str]) -> set[tuple[str, str]]:
    """The (mall, member) pairs whose orders are to be read and evaluated: those with an order of the run at which
    the bound (what the database holds, plus the run's orders before it and itself) reaches one of the mall's
    rules' lowest thresholds (``evaluation.reaches_any``), and those with a refund in the run (a refund may leave
    an amount higher than the database holds it, when an older refund event comes after a newer one)."""
    wanted: set[tuple[str, str]] = set()
    running: dict[tuple[str, str], _Running] = {}
    for e in events:
        key = (e.mall_id, e.member_id)
        if isinstance(e, ledger_events.OrderRefunded):
            if e.member_id in members and e.mall_id in malls:
                wanted.add(key)
            continue
        if key in wanted or e.member_id not in members or e.mall_id not in malls or e.order_id not in new_ids:
            continue
        if STORE_SEPARATOR in e.store_id:
            wanted.add(key)
            continue
        r = running.get(key)
        if r is None:
            r = running[key] = _Running(bounds.get(key, NO_ORDERS))
        amount = e.paid_amount if e.paid_amount > 0 else 0
        r.order_count += 1
        r.paid += amount
        if amount > r.max_paid:
            r.max_paid = amount
        count, paid = r.at_store.get(e.store_id, (0, 0))
        count, paid = r.at_store[e.store_id] = (count + 1, paid + amount)
        if count + r.stores.count(e.store_id) > r.store_count:
            r.store_count = count + r.stores.count(e.store_id)
        if paid > r.most_paid_at_store:
            r.most_paid_at_store = paid
        floor = malls[e.mall_id].floor
        if (r.max_paid >= floor.max_paid or r.store_count >= floor.store_count
                or r.store_paid + r.most_paid_at_store >= floor.store_paid
                or r.order_count >= floor.order_count or r.paid >= floor.paid):
            wanted.add(key)
    return wanted


def _evaluate(session: Session, cache: RuleCache, events: Sequence[OrderEvent],
              recorded: Sequence[ledger_events.OrderRecorded], times: dict[int, datetime], now: datetime) -> int:
    """Evaluates each recorded order in turn, on the orders (and refunds) before it; the run's own orders and
    refunds are not written yet, so what is read is the state before the run."""
    malls = {mall_id: rules for mall_id, rules in cache.get_many(session, sorted({e.mall_id for e in recorded})).items()
             if rules.rules}
    watched = [e for e in recorded if e.mall_id in malls]
    if not watched:
        return 0
    members = sorted({e.member_id for e in watched})
    skip = excluded_members(session, members)
    members = [m for m in members if m not in skip]
    if not members:
        return 0
    new_ids = {e.order_id for e in recorded}
    since = now - TOO_OLD
    # Upper bounds first (a republished order of the run counts twice in them, which only raises them) ...
    bounds = read_bounds(session, members, sorted(malls), since)
    wanted = _to_read(events, bounds, malls, set(members), new_ids)
    if not wanted:
        return 0
    # ... then the orders of the members that may fire, as they stood before this run: the run replays its own
    # orders in turn.
    members = sorted({member_id for _, member_id in wanted})
    windows = read_windows(session, members, sorted(malls), since, new_ids)
    horizons = {mall_id: horizon_start(now, mall.tz) for mall_id, mall in malls.items()}
    triggers: list[Trigger] = []
    for e in events:
        if isinstance(e, ledger_events.OrderRefunded):
            window = windows.get((e.mall_id, e.member_id))
            if window is not None and e.order_id in window:  # a pair with a refund is always read
                paid = max(e.order_paid_amount - e.total_refunded_paid_amount, 0)
                window[e.order_id] = window[e.order_id]._replace(fully_refunded=e.fully_refunded, paid_amount=paid)
            continue
        if (e.mall_id, e.member_id) not in wanted or e.order_id not in new_ids:
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
