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
from operator import itemgetter
from typing import NamedTuple

from sqlalchemy import Table
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.alert.evaluation import (
    HORIZON_DAYS,
    NEVER,
    Days,
    Order,
    Reach,
    evaluate,
    live,
    may_fire,
    reach,
    reaches_any,
)
from services.alert.models import MemberOrder
from services.alert.raising import Trigger, excluded_members, record_triggers
from services.alert.rules import MallRules, RuleCache
from services.common.bulk import column_binder, insert_rows, update_rows
from services.common.chunks import IN_LIST, chunks
from services.common.validation import aware, from_timestamp

ONLINE = "ORDER_CHANNEL_ONLINE"
# An order older than this can never count again (the widest window is 90 days; a day's slack for time zones).
TOO_OLD = timedelta(days=HORIZON_DAYS + 1)
OrderEvent = ledger_events.OrderRecorded | ledger_events.OrderRefunded
MEMBER_ORDER: Table = MemberOrder.__table__  # type: ignore[assignment]  # a mapped class's table
_OCCUR_TIME = MEMBER_ORDER.c.occur_time.type
ORDER_COLUMNS = ("order_id", "member_id", "mall_id", "store_id", "paid_amount", "fully_refunded", "occur_time")
WINDOW_ORDER = itemgetter(1, 2, 6)  # a member_order row's place in the window index: member, mall, time


class Recorded(NamedTuple):
    """A recorded order's fields, read off its event once: a protobuf field read makes a new object each time, and
    a batch goes over its orders several times."""

    order_id: str
    member_id: str
    mall_id: str
    store_id: str
    paid_amount: int
    occur_time: datetime  # aware


def apply_orders(session: Session, cache: RuleCache, events: Sequence[OrderEvent], now: datetime) -> int:
    """Applies the events in order; returns how many alerts opened."""
    oldest = now - TOO_OLD
    run: list[Recorded | ledger_events.OrderRefunded] = []  # the events in order, the recorded ones as ``Recorded``
    recorded: list[Recorded] = []  # those that go into the windows
    refunds: list[ledger_events.OrderRefunded] = []
    for e in events:
        if isinstance(e, ledger_events.OrderRecorded):
            order = Recorded(e.order_id, e.member_id, e.mall_id, e.store_id, e.paid_amount,
                             from_timestamp(e.occur_time))
            run.append(order)
            if order.member_id and order.mall_id and order.occur_time >= oldest and e.channel != ONLINE:
                recorded.append(order)
        else:
            run.append(e)
            refunds.append(e)
    opened = _evaluate(session, cache, run, recorded, now)
    conn = session.connection()
    # A recorded order already held (a republished event) stays as it is, and so does the first of an order recorded
    # twice in the run. In window index order (member, mall, time): each insert goes down next to the one before.
    # The values go as the driver takes them (``column_binder``), past SQLAlchemy's per-value bind processing.
    not_refunded = column_binder(conn.dialect, MEMBER_ORDER, "fully_refunded")(False)
    bind_time = column_binder(conn.dialect, MEMBER_ORDER, "occur_time")
    first = {o.order_id: o for o in reversed(recorded)}
    rows = [(o.order_id, o.member_id, o.mall_id, o.store_id, o.paid_amount, not_refunded, bind_time(o.occur_time))
            for o in first.values()]
    rows.sort(key=WINDOW_ORDER)
    insert_rows(conn, MEMBER_ORDER, ORDER_COLUMNS, rows, converted=True, skip_existing=True)
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
    ``read_windows`` gives at a million orders. The amounts are summed as they are, with their least beside them:
    with none below zero (the ledger records none) the plain sum and maximum are those of the positive amounts,
    at less cost to the database than clamping each amount; with one below zero every amount bound is ``NEVER``
    (reached by any threshold: the member is read in full)."""
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    since_value = _OCCUR_TIME.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    bound_since = since_value(since) if since_value is not None else since
    concat = "group_concat(store_id, char(31))" if conn.dialect.name == "sqlite" else "string_agg(store_id, chr(31))"
    numeric = conn.dialect.name != "sqlite"
    bounds: dict[tuple[str, str], Bound] = {}
    cursor = conn.connection.cursor()
    try:
        for part in chunks(members, IN_LIST):
            cursor.execute(f"SELECT member_id, mall_id, count(*), sum(paid_amount), max(paid_amount), "
                           f"min(paid_amount), {concat} "
                           f"FROM member_order WHERE member_id IN ({', '.join([mark] * len(part))}) "
                           f"AND mall_id IN ({', '.join([mark] * len(malls))}) AND occur_time >= {mark} "
                           f"AND NOT fully_refunded GROUP BY member_id, mall_id",
                           (*part, *malls, bound_since))
            for member_id, mall_id, count, paid, max_paid, least, concatenated in cursor.fetchall():
                stores = concatenated.split(STORE_SEPARATOR)
                distinct = set(stores)
                if least < 0:  # what the positive amounts add up to is not known: any amount may be reached
                    paid = max_paid = NEVER
                elif numeric:  # PostgreSQL sums to numeric
                    paid = int(paid)
                if len(distinct) == len(stores):
                    bounds[(mall_id, member_id)] = Bound(count, paid, max_paid, 1, max_paid, stores)
                else:
                    bounds[(mall_id, member_id)] = Bound(count, paid, max_paid, max(map(stores.count, distinct)),
                                                         paid, stores)
    finally:
        cursor.close()
    return bounds


NO_ORDERS = Bound(0, 0, 0, 0, 0, [])


def _to_read(run: Sequence[Recorded | ledger_events.OrderRefunded], bounds: dict[tuple[str, str], Bound],
             malls: dict[str, MallRules], members: set[str], new_ids: set[str]) -> set[tuple[str, str]]:
    """The (mall, member) pairs whose orders are to be read and evaluated: those with an order of the run at which
    the bound (what the database holds, plus the run's orders before it and itself) reaches one of the mall's
    rules' lowest thresholds (``evaluation.reaches_any``), and those with a refund in the run (a refund may leave
    an amount higher than the database holds it, when an older refund event comes after a newer one).

    Every part of the bound only grows as orders are added (amounts count as far as they are positive), so it
    reaches a threshold at one of a pair's orders exactly when it does with all of them: each pair is checked once,
    with the whole run's orders, in one pass over the run."""
    wanted: set[tuple[str, str]] = set()
    pairs: dict[tuple[str, str], list[Recorded]] = {}
    for e in run:
        if type(e) is not Recorded:  # a refund
            if e.member_id in members and e.mall_id in malls:
                wanted.add((e.mall_id, e.member_id))
            continue
        if e.member_id not in members or e.mall_id not in malls or e.order_id not in new_ids:
            continue
        key = (e.mall_id, e.member_id)
        if STORE_SEPARATOR in e.store_id:
            wanted.add(key)
            continue
        orders = pairs.get(key)
        if orders is None:
            pairs[key] = [e]
        else:
            orders.append(e)
    for key, orders in pairs.items():
        if key not in wanted and _reaches(bounds.get(key, NO_ORDERS), orders, malls[key[0]].floor):
            wanted.add(key)
    return wanted


def _reaches(b: Bound, orders: Sequence[Recorded], floor: Reach) -> bool:
    """Whether the bound ``b`` with the run's ``orders`` of the pair added reaches ``floor``
    (``evaluation.reaches_any``)."""
    if len(orders) == 1:  # most pairs: one order of the run, no sums per store to make
        o = orders[0]
        amount = o.paid_amount if o.paid_amount > 0 else 0
        return (amount >= floor.max_paid or b.max_paid >= floor.max_paid or b.order_count + 1 >= floor.order_count
                or b.paid + amount >= floor.paid or b.store_paid + amount >= floor.store_paid
                or b.store_count >= floor.store_count or 1 + b.stores.count(o.store_id) >= floor.store_count)
    paid, max_paid = b.paid, b.max_paid
    at_store: dict[str, list[int]] = {}  # the run's orders and their sum, by store
    for o in orders:
        amount = o.paid_amount if o.paid_amount > 0 else 0
        paid += amount
        if amount > max_paid:
            max_paid = amount
        count_paid = at_store.get(o.store_id)
        if count_paid is None:
            at_store[o.store_id] = [1, amount]
        else:
            count_paid[0] += 1
            count_paid[1] += amount
    store_count = max(b.store_count, max(count + b.stores.count(store) for store, (count, _) in at_store.items()))
    return reaches_any(Reach(b.order_count + len(orders), paid, max_paid, store_count,
                             b.store_paid + max(sum_paid for _, sum_paid in at_store.values())), floor)


def _evaluate(session: Session, cache: RuleCache, run: Sequence[Recorded | ledger_events.OrderRefunded],
              recorded: Sequence[Recorded], now: datetime) -> int:
    """Evaluates each recorded order in turn, on the orders (and refunds) before it; the run's own orders and
    refunds are not written yet, so what is read is the state before the run."""
    malls = {mall_id: rules for mall_id, rules in cache.get_many(session, sorted({o.mall_id for o in recorded})).items()
             if rules.rules}
    watched = [o for o in recorded if o.mall_id in malls]
    if not watched:
        return 0
    members = sorted({o.member_id for o in watched})
    skip = excluded_members(session, members)
    members = [m for m in members if m not in skip]
    if not members:
        return 0
    new_ids = {o.order_id for o in recorded}
    since = now - TOO_OLD
    # Upper bounds first (a republished order of the run counts twice in them, which only raises them) ...
    bounds = read_bounds(session, members, sorted(malls), since)
    wanted = _to_read(run, bounds, malls, set(members), new_ids)
    if not wanted:
        return 0
    # ... then the orders of the members that may fire, as they stood before this run: the run replays its own
    # orders in turn.
    members = sorted({member_id for _, member_id in wanted})
    windows = read_windows(session, members, sorted(malls), since, new_ids)
    days = {mall_id: Days(now, mall.tz) for mall_id, mall in malls.items()}
    horizons = {mall_id: mall_days.start(HORIZON_DAYS) for mall_id, mall_days in days.items()}
    triggers: list[Trigger] = []
    for e in run:
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
        window[e.order_id] = Order(e.order_id, e.store_id, e.paid_amount, e.occur_time)
        orders = live(window.values(), now, horizons[e.mall_id])
        reached = reach(orders)
        if not reaches_any(reached, mall.floor):
            continue
        for rule in mall.rules:
            if may_fire(rule, reached):
                hits = evaluate(rule, orders, days[e.mall_id])
                if hits:
                    triggers.append(Trigger(e.mall_id, e.member_id, rule, hits))
    return record_triggers(session, triggers, now)
