"""Random but reproducible customer-service data, and random crowd definitions over it."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from crowdpack.customer.v1 import crowd_pb2 as pb
from services.common.db import Database
from services.customer.classification.models import CustomerGroup, CustomerTag, Tag
from services.customer.levels.models import LevelChange
from services.customer.models import Customer, CustomerInteraction, CustomerStats, MemberOrder
from services.customer.organization.models import Mall, Store
from services.customer.stats import count_order, count_refund

CATEGORIES = ["food and beverage", "retail", "cinema"]
FORMATS = ["noodle", "coffee", "shoes", "imax"]
FLOORS = ["B1", "1F", "2F"]
STORE_TAGS = ["flagship", "new", "outlet"]


async def seed(db: Database, rng: random.Random, members: int = 300) -> dict[str, list[int]]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    ids: dict[str, list[int]] = {}
    async with db.transaction() as session:
        malls = [Mall(name=f"mall{i}", timezone="Asia/Shanghai", created_at=now) for i in range(3)]
        session.add_all(malls)
        await session.flush()
        stores = [Store(mall_id=rng.choice(malls).id, name=f"store{i}", category=rng.choice(CATEGORIES),
                        business_format=rng.choice(FORMATS), floor=rng.choice(FLOORS),
                        tags=",".join(rng.sample(STORE_TAGS, rng.randint(0, 2))), created_at=now) for i in range(12)]
        groups = [CustomerGroup(name=f"group{i}", created_at=now) for i in range(3)]
        tags = [Tag(name=f"custom{i}", predefined=False, created_at=now) for i in range(4)]
        session.add_all([*stores, *groups, *tags])
        await session.flush()
        customers = []
        for i in range(members):
            birthday = None
            if rng.random() < 0.85:
                birthday = rng.choice([date(2000, 2, 29), date(1996, 2, 29), date(2001, 12, 31), date(1990, 1, 1)]) \
                    if rng.random() < 0.1 else date(1950, 1, 1) + timedelta(days=rng.randint(0, 27000))
            opened = rng.random() < 0.6
            level = rng.choice([0, 0, 1, 2, 3])
            registered = now - timedelta(days=rng.randint(0, 500), hours=rng.randint(0, 23))
            customers.append(Customer(
                kind=2 if rng.random() < 0.03 else 1, phone=f"13{i:09d}", name=f"m{i}", real_name="",
                gender=rng.choice([1, 2, 3]), birthday=birthday, avatar_url="", registered_at=registered,
                registration_mall_id=rng.choice([None, *[m.id for m in malls]]), card_opened=opened,
                card_number=f"c{i}" if opened else None,
                card_open_time=now - timedelta(days=rng.randint(0, 400), hours=rng.randint(0, 23)) if opened else None,
                card_open_channel=rng.randint(1, 5) if opened else 0, promotion_channel="", open_scene="", level=level,
                level_frozen=False,
                level_expires_at=now + timedelta(days=rng.randint(-30, 120)) if level else None,
                group_id=rng.choice([None, *[g.id for g in groups]]), disabled=rng.random() < 0.15,
                review_status=rng.choice([1, 2, 2, 3]), store_member=rng.random() < 0.2, virtual=rng.random() < 0.05,
                deleted_at=now if rng.random() < 0.04 else None, created_at=now, updated_at=now))
        session.add_all(customers)
        await session.flush()
        all_tags = [t.id for t in tags] + [1, 2, 3]
        stats: dict[int, CustomerStats] = {}
        for c in customers:
            if c.kind == 1:  # every member has a stats row; one in five has no balances
                active = rng.random() < 0.8
                stats[c.id] = CustomerStats(
                    customer_id=c.id, points_balance=rng.randint(0, 5000) if active else 0,
                    red_packet_balance_fen=rng.randint(0, 20000) if active else 0, stored_balance_fen=0,
                    spend_count=0, spend_total_fen=0, level_spend_fen=0, cumulative_spend_fen=0, points_entry_id=0,
                    red_packet_entry_id=0, stored_entry_id=0, online_count=0, online_total_fen=0, offline_count=0,
                    offline_total_fen=0)
                session.add(stats[c.id])
            for tag in rng.sample(all_tags, rng.randint(0, 3)):
                session.add(CustomerTag(customer_id=c.id, tag_id=tag, created_at=now))
            for mall in rng.sample(malls, rng.randint(0, 2)):
                session.add(CustomerInteraction(customer_id=c.id, mall_id=mall.id, first_kind="consume", first_at=now))
        for c in customers:  # level history: upgrades, retains, downgrades and manual moves over the last 400 days
            for _ in range(rng.choice([0, 0, 1, 2, 3])):
                before, after = rng.randint(0, 3), rng.randint(0, 3)
                session.add(LevelChange(customer_id=c.id, from_level=before, to_level=after, kind=rng.randint(1, 4),
                                        reason="", operator_id="seed",
                                        created_at=now - timedelta(days=rng.randint(0, 400), hours=rng.randint(0, 23))))
        order_id = 0
        for c in customers:
            for _ in range(rng.choice([0, 0, 1, 2, 4, 8])):
                order_id += 1
                store = rng.choice(stores)
                amount = rng.choice([500, 1000, 5000, 12000, 80000])
                refunded = rng.choice([0, 0, 0, amount // 2, amount])
                order = MemberOrder(
                    order_id=order_id, customer_id=c.id, mall_id=store.mall_id, store_id=store.id,
                    channel=rng.choice(["ORDER_CHANNEL_POS", "ORDER_CHANNEL_FAST_POINTS", "ORDER_CHANNEL_ONLINE"]),
                    amount_fen=amount, paid_amount_fen=amount,
                    refunded_amount_fen=refunded, fully_refunded=refunded == amount,
                    occurred_at=now - timedelta(days=rng.randint(0, 200), minutes=rng.randint(0, 1440)))
                session.add(order)
                if c.id in stats:  # what the ledger projection keeps of it (stats.count_order, count_refund)
                    count_order(stats[c.id], order.channel, amount, order.occurred_at)
                    count_refund(stats[c.id], order.channel, refunded, order.fully_refunded)
        ids["malls"] = [m.id for m in malls]
        ids["stores"] = [s.id for s in stores]
        ids["groups"] = [g.id for g in groups]
        ids["tags"] = all_tags
    return ids


def _range(rng: random.Random, low: int, high: int) -> pb.Int64Range:
    a, b = sorted(rng.randint(low, high) for _ in range(2))
    choice = rng.random()
    if choice < 0.33:
        return pb.Int64Range(min=a)
    if choice < 0.66:
        return pb.Int64Range(max=b)
    return pb.Int64Range(min=a, max=b)


def _window(rng: random.Random) -> pb.DateWindow:
    pick = rng.random()
    if pick < 0.3:
        start = date(2026, 1, 1) + timedelta(days=rng.randint(0, 400))
        return pb.DateWindow(fixed=pb.FixedDates(from_date=start.isoformat(),
                                                 to_date=(start + timedelta(days=rng.randint(0, 120))).isoformat()))
    if pick < 0.55:
        return pb.DateWindow(last=pb.RelativeSpan(count=rng.randint(1, 90), unit=pb.RELATIVE_UNIT_DAYS))
    if pick < 0.7:
        return pb.DateWindow(last=pb.RelativeSpan(count=rng.randint(1, 6), unit=pb.RELATIVE_UNIT_MONTHS))
    if pick < 0.85:
        return pb.DateWindow(next=pb.RelativeSpan(count=rng.randint(1, 60), unit=rng.choice(
            [pb.RELATIVE_UNIT_DAYS, pb.RELATIVE_UNIT_MONTHS])))
    if pick < 0.93:
        return pb.DateWindow(this_month=True)
    return pb.DateWindow(ever=True)


def condition(rng: random.Random, ids: dict[str, list[int]], kind: str) -> pb.Condition:
    malls, stores = [str(m) for m in ids["malls"]], [str(s) for s in ids["stores"]]
    if kind == "gender":
        return pb.Condition(gender=pb.GenderCondition(genders=rng.sample([1, 2, 3], rng.randint(1, 2))))
    if kind == "birthday":
        if rng.random() < 0.5:
            a, b = (date(2000, 1, 1) + timedelta(days=rng.randint(0, 365)) for _ in range(2))
            return pb.Condition(birthday=pb.BirthdayCondition(fixed=pb.MonthDayRange(
                from_month_day=a.strftime("%m-%d"), to_month_day=b.strftime("%m-%d"))))
        return pb.Condition(birthday=pb.BirthdayCondition(relative=_window(rng)))
    if kind == "age":
        return pb.Condition(age=pb.AgeCondition(years=_range(rng, 0, 80)))
    if kind == "card_opened":
        return pb.Condition(card_opened=pb.CardOpenedCondition(opened=rng.random() < 0.5))
    if kind == "card_open_time":
        return pb.Condition(card_open_time=pb.CardOpenTimeCondition(window=_window(rng)))
    if kind == "level":
        return pb.Condition(level=pb.LevelCondition(levels=rng.sample([0, 1, 2, 3], rng.randint(1, 2)),
                                                    negate=rng.random() < 0.3))
    if kind == "level_expiry":
        return pb.Condition(level_expiry=pb.LevelExpiryCondition(window=_window(rng), level=rng.choice([0, 1, 2])))
    if kind == "store_member":
        return pb.Condition(store_member=pb.StoreMemberCondition(store_member=rng.random() < 0.5))
    if kind == "points_balance":
        return pb.Condition(points_balance=pb.PointsBalanceCondition(points=_range(rng, 0, 5000)))
    if kind == "red_packet_balance":
        return pb.Condition(red_packet_balance=pb.RedPacketBalanceCondition(fen=_range(rng, 0, 20000)))
    if kind == "consumption":
        scope = pb.StoreScope()
        if rng.random() < 0.5:
            scope.mall_ids.extend(rng.sample(malls, rng.randint(1, 2)))
        narrow = rng.random()
        if narrow < 0.2:
            scope.categories.extend(rng.sample(CATEGORIES, rng.randint(1, 2)))
        elif narrow < 0.3:
            scope.business_formats.extend(rng.sample(FORMATS, 1))
        elif narrow < 0.4:
            scope.floors.extend(rng.sample(FLOORS, 1))
        elif narrow < 0.5:
            scope.store_tags.extend(rng.sample(STORE_TAGS, 1))
        elif narrow < 0.6:
            scope.store_ids.extend(rng.sample(stores, 3))
        metric = rng.choice(list(range(1, 8)))
        ranges = {3: (1, 6), 4: (0, 100_000), 5: (0, 80_000), 6: (0, 60_000), 7: (1, 4)}
        c = pb.ConsumptionCondition(scope=scope, window=_window(rng), metric=metric)
        if metric in ranges:
            c.range.CopyFrom(_range(rng, *ranges[metric]))
        return pb.Condition(consumption=c)
    if kind == "tags":
        return pb.Condition(tags=pb.TagCondition(tag_ids=[str(t) for t in rng.sample(ids["tags"], rng.randint(1, 3))],
                                                 negate=rng.random() < 0.3))
    if kind == "groups":
        options = ["default", *[str(g) for g in ids["groups"]]]
        return pb.Condition(groups=pb.GroupCondition(group_ids=rng.sample(options, rng.randint(1, 2))))
    if kind == "registration_mall":
        return pb.Condition(registration_mall=pb.MallCondition(mall_ids=rng.sample(malls, rng.randint(1, 2))))
    if kind == "interaction_mall":
        return pb.Condition(interaction_mall=pb.MallCondition(mall_ids=rng.sample(malls, rng.randint(1, 2))))
    if kind == "disabled":
        return pb.Condition(disabled=pb.DisabledCondition(disabled=rng.random() < 0.5))
    if kind == "registration_time":
        return pb.Condition(registration_time=pb.RegistrationTimeCondition(window=_window(rng)))
    if kind == "card_open_channel":
        return pb.Condition(card_open_channel=pb.CardOpenChannelCondition(channels=rng.sample([1, 2, 3, 4, 5],
                                                                                               rng.randint(1, 2))))
    if kind == "native_card":
        return pb.Condition(native_card=pb.NativeCardCondition(channel=rng.randint(1, 4), opened=rng.random() < 0.5))
    if kind == "level_change":
        c = pb.LevelChangeCondition(window=_window(rng), directions=rng.sample([1, 2, 3], rng.randint(0, 2)))
        if rng.random() < 0.6:
            c.level = rng.randint(0, 3)
        return pb.Condition(level_change=c)
    if kind == "online_orders":
        metric = rng.choice([pb.CONSUMPTION_METRIC_COUNT, pb.CONSUMPTION_METRIC_TOTAL, pb.CONSUMPTION_METRIC_LAST_TIME])
        c = pb.OnlineOrdersCondition(metric=metric)
        if metric == pb.CONSUMPTION_METRIC_LAST_TIME:
            c.window.CopyFrom(_window(rng))
        else:
            c.range.CopyFrom(_range(rng, *((0, 4) if metric == pb.CONSUMPTION_METRIC_COUNT else (0, 100_000))))
        return pb.Condition(online_orders=c)
    if kind == "review_status":
        return pb.Condition(review_status=pb.ReviewStatusCondition(statuses=rng.sample([1, 2, 3], rng.randint(1, 2))))
    raise AssertionError(kind)


KINDS = [f.name for f in pb.Condition.DESCRIPTOR.oneofs_by_name["kind"].fields]


def definition(rng: random.Random, ids: dict[str, list[int]], kinds: list[str] | None = None) -> pb.CrowdDefinition:
    groups = []
    for i in range(rng.randint(1, 3)):
        chosen = kinds or rng.sample(KINDS, rng.randint(1, 3))
        join = pb.GROUP_JOIN_INCLUDE if i == 0 else rng.choice([pb.GROUP_JOIN_OR, pb.GROUP_JOIN_EXCLUDE])
        groups.append(pb.ConditionGroup(join=join, conditions=[condition(rng, ids, k) for k in chosen]))
    return pb.CrowdDefinition(groups=groups, include_virtual=rng.random() < 0.2)
