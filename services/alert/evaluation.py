"""What a rule means: which of a member's orders fire which condition (docs/alerts.md).

Pure functions over plain values, so the order consumer and the background re-evaluation apply
exactly the same semantics:

- the orders considered are the member's orders in the rule's mall, not online, not fully refunded,
  whose store is in the rule's scope, within the last 90 calendar days of the mall's time zone;
- "the last D days" is today and the D-1 days before it in the mall's time zone (as crowd packages);
- an order's amount is what the member paid less what was refunded of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from crowdpack.alert.v1 import alert_service_pb2 as pb

HORIZON_DAYS = 90
SINGLE_ORDER = pb.CONDITION_KIND_SINGLE_ORDER
ANY_STORE = pb.CONDITION_KIND_ANY_STORE
SCOPE_TOTAL = pb.CONDITION_KIND_SCOPE_TOTAL


class Order(NamedTuple):
    """An order as the rules see it (a tuple: the order consumer makes ten or so per order it applies, and a tuple
    is made four times quicker than a frozen dataclass)."""

    order_id: str
    store_id: str
    paid_amount: int  # fen, less refunds
    occur_time: datetime  # aware
    fully_refunded: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    days: int
    min_count: int | None
    min_paid: int | None

    def reached(self, count: int, paid: int) -> bool:
        return ((self.min_count is not None and count >= self.min_count)
                or (self.min_paid is not None and paid >= self.min_paid))


@dataclass(frozen=True, slots=True)
class RuleSpec:
    rule_id: int
    name: str
    # None: every store of the mall.
    stores: frozenset[str] | None
    single_min_paid: int | None
    any_store: Window | None
    scope_total: Window | None


@dataclass(frozen=True, slots=True)
class Hit:
    condition: int  # ConditionKind
    orders: tuple[Order, ...]


@lru_cache(maxsize=4096)
def _start_of(today: date, tz: ZoneInfo, days: int) -> datetime:
    return datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=tz).astimezone(UTC)


def day_start(now: datetime, tz: ZoneInfo, days: int) -> datetime:
    """The first instant (UTC) of "the last ``days`` days" as of ``now`` in ``tz``: today counts as one."""
    return _start_of(now.astimezone(tz).date(), tz, days)


def horizon_start(now: datetime, tz: ZoneInfo) -> datetime:
    return day_start(now, tz, HORIZON_DAYS)


class Days:
    """The first instants of "the last D days" (``day_start``) as of one ``now`` in one time zone, each made once:
    a batch evaluates many members of a mall as of the same ``now``, and a time zone conversion costs more than
    most of an evaluation."""

    __slots__ = ("now", "tz", "today", "_starts")

    def __init__(self, now: datetime, tz: ZoneInfo) -> None:
        self.now = now
        self.tz = tz
        self.today = now.astimezone(tz).date()
        self._starts: dict[int, datetime] = {}

    def start(self, days: int) -> datetime:
        start = self._starts.get(days)
        if start is None:
            start = self._starts[days] = _start_of(self.today, self.tz, days)
        return start


def evaluate(rule: RuleSpec, orders: Iterable[Order], days: Days) -> list[Hit]:
    """The conditions of ``rule`` that ``orders`` (one member's, in the rule's mall) fire as of ``days.now``, in the
    mall's time zone (``days.tz``), with their orders."""
    now = days.now
    horizon = days.start(HORIZON_DAYS)
    scoped = [o for o in orders if not o.fully_refunded and horizon <= o.occur_time <= now
              and (rule.stores is None or o.store_id in rule.stores)]
    if not scoped:
        return []
    hits = []
    if rule.single_min_paid is not None:
        big = tuple(o for o in scoped if o.paid_amount >= rule.single_min_paid)
        if big:
            hits.append(Hit(SINGLE_ORDER, big))
    if rule.any_store is not None:
        start = days.start(rule.any_store.days)
        by_store: dict[str, list[Order]] = defaultdict(list)
        for o in scoped:
            if o.occur_time >= start:
                by_store[o.store_id].append(o)
        fired = tuple(o for store in sorted(by_store) for o in by_store[store]
                      if rule.any_store.reached(len(by_store[store]), sum(x.paid_amount for x in by_store[store])))
        if fired:
            hits.append(Hit(ANY_STORE, fired))
    if rule.scope_total is not None:
        start = days.start(rule.scope_total.days)
        recent = tuple(o for o in scoped if o.occur_time >= start)
        if recent and rule.scope_total.reached(len(recent), sum(o.paid_amount for o in recent)):
            hits.append(Hit(SCOPE_TOTAL, recent))
    return hits


class Reach(NamedTuple):
    """What a member's live orders (the last 90 days, not fully refunded) reach with no store scope: the most any
    rule can see. A rule none of whose thresholds these reach cannot fire (amounts count only as far as they are
    positive, so a subset never sums higher). A tuple: one is made per order applied."""

    order_count: int
    paid: int
    max_paid: int
    store_count: int  # the most orders at one store
    store_paid: int  # the highest paid sum at one store


def live(orders: Iterable[Order], now: datetime, horizon: datetime) -> list[Order]:
    """The orders any rule can count as of ``now``: not fully refunded, since ``horizon`` (``horizon_start`` of
    ``now`` in the mall's time zone: the last 90 days), not in the future."""
    return [o for o in orders if not o.fully_refunded and horizon <= o.occur_time <= now]


def reach(orders: Sequence[Order]) -> Reach:
    paid = max_paid = 0
    for o in orders:
        amount = o.paid_amount if o.paid_amount > 0 else 0
        paid += amount
        if amount > max_paid:
            max_paid = amount
    if len({o.store_id for o in orders}) == len(orders):
        # Each order at a store of its own (most members' 90 days): one order is the most at a store, and the
        # largest amount the highest sum. No sums per store to make.
        return Reach(len(orders), paid, max_paid, min(len(orders), 1), max_paid)
    counts: dict[str, int] = {}
    sums: dict[str, int] = {}
    for o in orders:
        amount = o.paid_amount if o.paid_amount > 0 else 0
        counts[o.store_id] = counts.get(o.store_id, 0) + 1
        sums[o.store_id] = sums.get(o.store_id, 0) + amount
    return Reach(len(orders), paid, max_paid, max(counts.values()), max(sums.values()))


def may_fire(rule: RuleSpec, r: Reach) -> bool:
    """False when ``rule`` cannot fire on orders that reach ``r`` (True says only that it might)."""
    if rule.single_min_paid is not None and r.max_paid >= rule.single_min_paid:
        return True
    if rule.any_store is not None and rule.any_store.reached(r.store_count, r.store_paid):
        return True
    return rule.scope_total is not None and rule.scope_total.reached(r.order_count, r.paid)


NEVER = 1 << 62


def lowest(rules: Iterable[RuleSpec]) -> Reach:
    """The lowest threshold of each kind among ``rules``: orders that reach none of them fire none of the rules."""
    rules = list(rules)

    def low(values: Iterable[int | None]) -> int:
        return min((v for v in values if v is not None), default=NEVER)

    return Reach(order_count=low(r.scope_total.min_count for r in rules if r.scope_total),
                 paid=low(r.scope_total.min_paid for r in rules if r.scope_total),
                 max_paid=low(r.single_min_paid for r in rules),
                 store_count=low(r.any_store.min_count for r in rules if r.any_store),
                 store_paid=low(r.any_store.min_paid for r in rules if r.any_store))


def reaches_any(r: Reach, floor: Reach) -> bool:
    return (r.max_paid >= floor.max_paid or r.store_count >= floor.store_count or r.store_paid >= floor.store_paid
            or r.order_count >= floor.order_count or r.paid >= floor.paid)


def condition_bits(hits: Sequence[Hit]) -> int:
    bits = 0
    for hit in hits:
        bits |= 1 << hit.condition
    return bits


def conditions_of(bits: int) -> list[int]:
    return [kind for kind in (SINGLE_ORDER, ANY_STORE, SCOPE_TOTAL) if bits & (1 << kind)]
