"""What a rule means, on hand-made orders: the mall's calendar days, refunds, scopes and "count or sum"."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.alert.evaluation import (
    ANY_STORE,
    SCOPE_TOTAL,
    SINGLE_ORDER,
    Days,
    Order,
    Reach,
    RuleSpec,
    Window,
    day_start,
    evaluate,
    reach,
)

SHANGHAI, LA = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 on 10 March in Shanghai; 18:00 on 9 March in Los Angeles


def rule(**kw) -> RuleSpec:
    base = dict(rule_id=1, name="r", stores=None, single_min_paid=None, any_store=None, scope_total=None)
    return RuleSpec(**{**base, **kw})


def test_the_last_d_days_are_calendar_days_of_the_mall_today_included():
    assert day_start(NOW, SHANGHAI, 1) == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)  # 00:00 10 March, Shanghai
    assert day_start(NOW, LA, 1) == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)  # 00:00 9 March, Los Angeles (PDT)
    assert day_start(NOW, SHANGHAI, 3) == datetime(2026, 3, 7, 16, 0, tzinfo=UTC)


def test_day_starts_made_once_per_batch_are_the_day_starts():
    rng = random.Random(3)
    for _ in range(200):
        now = datetime(2026, 1, 1, tzinfo=UTC) + (datetime(2027, 1, 1, tzinfo=UTC) - datetime(2026, 1, 1, tzinfo=UTC)) \
            * rng.random()
        for tz in (SHANGHAI, LA):
            days = Days(now, tz)
            for d in rng.sample(range(1, 91), 5) + [90, 1]:  # asked for again: the kept one
                assert days.start(d) == day_start(now, tz, d)


def test_one_day_window_differs_by_time_zone():
    orders = [Order("a", "s", 100, datetime(2026, 3, 9, 10, 0, tzinfo=UTC)),  # 18:00 9 Mar SH; 03:00 9 Mar LA
              Order("b", "s", 100, datetime(2026, 3, 9, 17, 0, tzinfo=UTC))]  # 01:00 10 Mar SH; 10:00 9 Mar LA
    today_two = rule(scope_total=Window(1, 2, None))
    assert evaluate(today_two, orders, Days(NOW, SHANGHAI)) == []  # only b is today in Shanghai
    hits = evaluate(today_two, orders, Days(NOW, LA))  # both are 9 March in Los Angeles
    assert [(h.condition, [o.order_id for o in h.orders]) for h in hits] == [(SCOPE_TOTAL, ["a", "b"])]


def test_refunds_lower_sums_and_a_full_refund_leaves_the_count():
    when = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
    orders = [Order("a", "s", 60, when), Order("b", "s", 50, when, fully_refunded=True), Order("c", "s", 40, when)]
    assert evaluate(rule(any_store=Window(1, 3, None)), orders, Days(NOW, SHANGHAI)) == []
    assert evaluate(rule(any_store=Window(1, None, 101)), orders, Days(NOW, SHANGHAI)) == []
    hits = evaluate(rule(any_store=Window(1, 3, 100)), orders, Days(NOW, SHANGHAI))  # count or sum: the sum reaches
    assert [o.order_id for o in hits[0].orders] == ["a", "c"] and hits[0].condition == ANY_STORE
    assert [o.order_id for o in evaluate(rule(single_min_paid=50), orders, Days(NOW, SHANGHAI))[0].orders] == ["a"]


def test_any_store_needs_one_store_to_reach_the_threshold_and_scope_limits_stores():
    when = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
    orders = [Order("a", "s1", 10, when), Order("b", "s2", 10, when), Order("c", "s2", 10, when)]
    assert evaluate(rule(any_store=Window(7, 3, None)), orders, Days(NOW, SHANGHAI)) == []
    shanghai = Days(NOW, SHANGHAI)
    assert [h.condition for h in evaluate(rule(scope_total=Window(7, 3, None)), orders, shanghai)] == [SCOPE_TOTAL]
    assert evaluate(rule(stores=frozenset({"s1"}), scope_total=Window(7, 2, None)), orders, Days(NOW, SHANGHAI)) == []
    two = evaluate(rule(any_store=Window(7, 2, None)), orders, Days(NOW, SHANGHAI))
    assert [o.order_id for o in two[0].orders] == ["b", "c"]


def test_orders_outside_ninety_days_or_in_the_future_never_count():
    old = Order("old", "s", 999, datetime(2025, 12, 10, 15, 59, tzinfo=UTC))  # 23:59 10 Dec SH: 91st day back
    edge = Order("edge", "s", 999, datetime(2025, 12, 10, 16, 0, tzinfo=UTC))  # 00:00 11 Dec SH: the 90th
    hits = evaluate(rule(single_min_paid=1), [old, edge], Days(NOW, SHANGHAI))
    assert [(h.condition, [o.order_id for o in h.orders]) for h in hits] == [(SINGLE_ORDER, ["edge"])]


def test_reach_is_what_a_plain_count_per_store_gives():
    rng = random.Random(2)
    when = datetime(2026, 3, 9, tzinfo=UTC)
    for _ in range(2_000):
        orders = [Order(str(i), f"s{rng.randrange(rng.choice([2, 30]))}", rng.choice([0, 1, 50, 900]), when)
                  for i in range(rng.randrange(0, 9))]
        stores = {o.store_id for o in orders}
        assert reach(orders) == Reach(
            order_count=len(orders), paid=sum(o.paid_amount for o in orders),
            max_paid=max((o.paid_amount for o in orders), default=0),
            store_count=max((sum(o.store_id == s for o in orders) for s in stores), default=0),
            store_paid=max((sum(o.paid_amount for o in orders if o.store_id == s) for s in stores), default=0))
