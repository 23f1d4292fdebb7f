"""A plain re-computation of the alerts a sequence of events should raise (docs/alerts.md), written apart
from services/alert so the tests compare two independent readings of the rules.

It replays the same events in the same order: after each recorded order it evaluates the member against
each rule of the mall on the orders known then, in the mall's local calendar days, and keeps, per member
and rule, the union of the conditions that fired and of the (condition, order) pairs behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

SINGLE, ANY, TOTAL = "CONDITION_KIND_SINGLE_ORDER", "CONDITION_KIND_ANY_STORE", "CONDITION_KIND_SCOPE_TOTAL"


@dataclass
class PlainRule:
    mall: str
    scope: str  # all / category / business_format / floor / tag / stores
    values: set[str]
    single: int | None = None  # min paid
    any_store: tuple[int, int | None, int | None] | None = None  # days, min count, min paid
    total: tuple[int, int | None, int | None] | None = None


@dataclass
class PlainOrder:
    member: str
    mall: str
    store: str
    paid: int
    when: datetime
    refunded: int = 0
    full: bool = False


@dataclass
class PlainAlerts:
    timezones: dict[str, str]
    stores: dict[str, dict] = field(default_factory=dict)
    orders: dict[str, PlainOrder] = field(default_factory=dict)
    rules: dict[str, PlainRule] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)
    alerts: dict[tuple[str, str], tuple[set[str], set[tuple[str, str]]]] = field(default_factory=dict)

    def store(self, store_id: str, mall: str, category: str = "", business_format: str = "", floor: str = "",
              tags: tuple[str, ...] = ()) -> None:
        self.stores[store_id] = {"mall": mall, "category": category, "business_format": business_format,
                                 "floor": floor, "tags": set(tags)}

    def record(self, order_id: str, member: str, mall: str, store: str, paid: int, when: datetime,
               online: bool = False) -> None:
        if online:
            return
        self.orders[order_id] = PlainOrder(member, mall, store, paid, when)
        if member in self.excluded:
            return
        for rule_id, rule in self.rules.items():
            if rule.mall == mall:
                self.check(member, rule_id)

    def refund(self, order_id: str, total_refunded_paid: int, full: bool) -> None:
        if order_id in self.orders:
            self.orders[order_id].refunded = total_refunded_paid
            self.orders[order_id].full = full

    def in_scope(self, rule: PlainRule, store_id: str) -> bool:
        if rule.scope == "all":
            return True
        if rule.scope == "stores":
            return store_id in rule.values
        store = self.stores.get(store_id)
        if store is None:
            return False
        if rule.scope == "tag":
            return bool(store["tags"] & rule.values)
        return store[rule.scope] in rule.values

    def check(self, member: str, rule_id: str, now: datetime | None = None) -> None:
        rule = self.rules[rule_id]
        tz = ZoneInfo(self.timezones[rule.mall])
        today = (now or datetime.now(tz)).astimezone(tz).date()

        def day(o: PlainOrder) -> date:
            return o.when.astimezone(tz).date()

        mine = [(oid, o) for oid, o in self.orders.items()
                if o.member == member and o.mall == rule.mall and not o.full and self.in_scope(rule, o.store)
                and today - timedelta(days=89) <= day(o) <= today]
        fired: set[tuple[str, str]] = set()
        if rule.single is not None:
            fired |= {(SINGLE, oid) for oid, o in mine if o.paid - o.refunded >= rule.single}
        if rule.any_store is not None:
            days, count, paid = rule.any_store
            stores: dict[str, list[tuple[str, PlainOrder]]] = {}
            for oid, o in mine:
                if day(o) >= today - timedelta(days=days - 1):
                    stores.setdefault(o.store, []).append((oid, o))
            for group in stores.values():
                if (count is not None and len(group) >= count) or \
                        (paid is not None and sum(o.paid - o.refunded for _, o in group) >= paid):
                    fired |= {(ANY, oid) for oid, _ in group}
        if rule.total is not None:
            days, count, paid = rule.total
            group = [(oid, o) for oid, o in mine if day(o) >= today - timedelta(days=days - 1)]
            if group and ((count is not None and len(group) >= count)
                          or (paid is not None and sum(o.paid - o.refunded for _, o in group) >= paid)):
                fired |= {(TOTAL, oid) for oid, _ in group}
        if fired:
            conditions, orders = self.alerts.setdefault((member, rule_id), (set(), set()))
            conditions |= {c for c, _ in fired}
            orders |= fired

    def reevaluate(self, rule_id: str) -> None:
        """A rule's background pass: every member with orders in its mall, on the orders as they stand."""
        rule = self.rules[rule_id]
        for member in sorted({o.member for o in self.orders.values() if o.mall == rule.mall}):
            if member not in self.excluded:
                self.check(member, rule_id)
