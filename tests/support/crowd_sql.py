"""A plain-SQL evaluation of a CrowdDefinition: the oracle the segment engine is checked against.

It is written independently of services/customer/crowds/translate.py: conditions become SQL
over the customer service's tables (joins, EXISTS, GROUP BY ... HAVING), with the same
documented semantics. Every mall in the differential tests shares one time zone, which is
what lets consumption windows compare timestamps directly.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, extract, false, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import crowd_pb2 as pb
from services.customer.classification.models import CustomerTag
from services.customer.levels.models import LevelChange
from services.customer.models import Customer, CustomerInteraction, CustomerStats, MemberOrder
from services.customer.organization.models import Store

OFFLINE = ["ORDER_CHANNEL_FAST_POINTS", "ORDER_CHANNEL_LIGHTNING_PAY", "ORDER_CHANNEL_PHOTO_POINTS",
           "ORDER_CHANNEL_POS"]


def _months(d: date, n: int) -> date:
    i = d.month - 1 + n
    y, m = d.year + i // 12, i % 12 + 1
    return d.replace(year=y, month=m, day=min(d.day, calendar.monthrange(y, m)[1]))


def window(w: pb.DateWindow, today: date) -> tuple[date, date]:
    kind = w.WhichOneof("window")
    if kind == "fixed":
        return date.fromisoformat(w.fixed.from_date), date.fromisoformat(w.fixed.to_date)
    if kind == "this_month":
        return today.replace(day=1), today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if kind == "ever":  # far enough either way for any stored time
        return date(1000, 1, 1), date(9000, 12, 31)
    span = getattr(w, kind)
    if span.unit == pb.RELATIVE_UNIT_DAYS:
        return (today - timedelta(days=span.count - 1), today) if kind == "last" else \
            (today, today + timedelta(days=span.count - 1))
    first = today.replace(day=1)
    if kind == "last":
        return _months(first, -(span.count - 1)), today
    end = _months(first, span.count - 1)
    return today, end.replace(day=calendar.monthrange(end.year, end.month)[1])


class SqlCrowd:
    def __init__(self, session: AsyncSession, today: date, tz: ZoneInfo) -> None:
        self.session = session
        self.today = today
        self.tz = tz

    def _bounds(self, w: pb.DateWindow) -> tuple[datetime, datetime]:
        start, end = window(w, self.today)
        # Stored times are UTC (SQLite keeps the UTC wall clock), so the bounds are converted to UTC.
        return (datetime.combine(start, time(), self.tz).astimezone(UTC),
                datetime.combine(end + timedelta(days=1), time(), self.tz).astimezone(UTC))

    async def evaluate(self, definition: pb.CrowdDefinition) -> set[int]:
        result: set[int] = set()
        for i, group in enumerate(definition.groups):
            clauses = [self.condition(c) for c in group.conditions]
            ids = set((await self.session.scalars(
                select(Customer.id).outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id)
                .where(and_(*clauses)))).all())
            if i == 0 or group.join == pb.GROUP_JOIN_OR:
                result |= ids
            else:
                result -= ids
        base = [Customer.kind == 1, Customer.deleted_at.is_(None)]
        if not definition.include_virtual:
            base.append(Customer.virtual.is_(False))
        live = set((await self.session.scalars(select(Customer.id).where(*base))).all())
        return result & live

    def _range(self, expr, r: pb.Int64Range):
        parts = []
        if r.HasField("min"):
            parts.append(expr >= r.min)
        if r.HasField("max"):
            parts.append(expr <= r.max)
        return and_(*parts)

    def condition(self, c: pb.Condition):
        kind = c.WhichOneof("kind")
        x = getattr(c, kind)
        month, day, year = extract("month", Customer.birthday), extract("day", Customer.birthday), \
            extract("year", Customer.birthday)
        if kind == "gender":
            return Customer.gender.in_(list(x.genders))
        if kind == "birthday":
            if x.WhichOneof("when") == "fixed":
                f = [int(p) for p in x.fixed.from_month_day.split("-")]
                t = [int(p) for p in x.fixed.to_month_day.split("-")]
                md = month * 100 + day
                lo, hi = f[0] * 100 + f[1], t[0] * 100 + t[1]
                return and_(Customer.birthday.is_not(None), md.between(lo, hi) if lo <= hi else or_(md >= lo, md <= hi))
            start, end = window(x.relative, self.today)
            month_days = set()
            d = start
            while d <= end:
                month_days.add(d.month * 100 + d.day)
                if d.month == 2 and d.day == 28 and not calendar.isleap(d.year):
                    month_days.add(229)
                d += timedelta(days=1)
            return and_(Customer.birthday.is_not(None), (month * 100 + day).in_(sorted(month_days)))
        if kind == "age":
            t = self.today
            before_birthday = case((or_(month > t.month, and_(month == t.month, day > t.day)), 1), else_=0)
            age = t.year - year - before_birthday
            return and_(Customer.birthday.is_not(None), self._range(age, x.years))
        if kind == "card_opened":
            return Customer.card_opened.is_(x.opened)
        if kind == "card_open_time":
            lo, hi = self._bounds(x.window)
            return and_(Customer.card_open_time >= lo, Customer.card_open_time < hi)
        if kind == "level":
            return Customer.level.not_in(list(x.levels)) if x.negate else Customer.level.in_(list(x.levels))
        if kind == "level_expiry":
            lo, hi = self._bounds(x.window)
            level = Customer.level == x.level if x.level else Customer.level > 0
            return and_(Customer.level_expires_at >= lo, Customer.level_expires_at < hi, level)
        if kind == "store_member":
            return Customer.store_member.is_(x.store_member)
        if kind == "points_balance":
            return self._range(func.coalesce(CustomerStats.points_balance, 0), x.points)
        if kind == "red_packet_balance":
            return self._range(func.coalesce(CustomerStats.red_packet_balance_fen, 0), x.fen)
        if kind == "consumption":
            return self._consumption(x)
        if kind == "tags":
            has = exists(select(CustomerTag.customer_id).where(
                CustomerTag.customer_id == Customer.id, CustomerTag.tag_id.in_([int(t) for t in x.tag_ids])))
            return not_(has) if x.negate else has
        if kind == "groups":
            ids = [int(g) for g in x.group_ids if g != "default"]
            return or_(Customer.group_id.in_(ids), Customer.group_id.is_(None) if "default" in x.group_ids else false())
        if kind == "registration_mall":
            return Customer.registration_mall_id.in_([int(m) for m in x.mall_ids])
        if kind == "interaction_mall":
            return exists(select(CustomerInteraction.customer_id).where(
                CustomerInteraction.customer_id == Customer.id,
                CustomerInteraction.mall_id.in_([int(m) for m in x.mall_ids])))
        if kind == "disabled":
            return Customer.disabled.is_(x.disabled)
        if kind == "review_status":
            return Customer.review_status.in_(list(x.statuses))
        if kind == "level_change":
            lo, hi = self._bounds(x.window)
            moved = {pb.LEVEL_CHANGE_DIRECTION_UPGRADED: LevelChange.to_level > LevelChange.from_level,
                     pb.LEVEL_CHANGE_DIRECTION_RETAINED: LevelChange.to_level == LevelChange.from_level,
                     pb.LEVEL_CHANGE_DIRECTION_DOWNGRADED: LevelChange.to_level < LevelChange.from_level}
            wanted = [LevelChange.customer_id == Customer.id, LevelChange.created_at >= lo, LevelChange.created_at < hi]
            if x.directions:
                wanted.append(or_(*[moved[d] for d in x.directions]))
            if x.HasField("level"):
                wanted.append(LevelChange.to_level == x.level)
            return exists(select(LevelChange.id).where(*wanted))
        if kind == "online_orders":
            online = [MemberOrder.customer_id == Customer.id, MemberOrder.channel == "ORDER_CHANNEL_ONLINE"]
            if x.metric == pb.CONSUMPTION_METRIC_LAST_TIME:
                lo, hi = self._bounds(x.window)
                last = select(func.max(MemberOrder.occurred_at)).where(*online).scalar_subquery()
                return and_(last >= lo, last < hi)
            if x.metric == pb.CONSUMPTION_METRIC_COUNT:
                value = select(func.count()).where(*online, MemberOrder.fully_refunded.is_(False)).scalar_subquery()
            else:
                value = select(func.coalesce(func.sum(MemberOrder.amount_fen - MemberOrder.refunded_amount_fen), 0)) \
                    .where(*online).scalar_subquery()
            return self._range(value, x.range)
        if kind == "registration_time":
            lo, hi = self._bounds(x.window)
            return and_(Customer.registered_at >= lo, Customer.registered_at < hi)
        if kind == "card_open_channel":
            return and_(Customer.card_opened.is_(True), Customer.card_open_channel.in_(list(x.channels)))
        if kind == "native_card":
            there = and_(Customer.card_opened.is_(True), Customer.card_open_channel == x.channel)
            return there if x.opened else not_(there)
        raise AssertionError(kind)

    def _consumption(self, x: pb.ConsumptionCondition):
        s = x.scope
        in_scope = [MemberOrder.customer_id == Customer.id, MemberOrder.fully_refunded.is_(False),
                    MemberOrder.channel.in_(OFFLINE)]
        store_filters = []
        if s.mall_ids:
            store_filters.append(Store.mall_id.in_([int(m) for m in s.mall_ids]))
        for values, column in ((s.categories, Store.category), (s.business_formats, Store.business_format),
                               (s.floors, Store.floor)):
            if values:
                store_filters.append(column.in_(list(values)))
        if s.store_tags:
            store_filters.append(or_(*[("," + Store.tags + ",").contains(f",{t},") for t in s.store_tags]))
        if s.store_ids:
            store_filters.append(Store.id.in_([int(i) for i in s.store_ids]))
        if store_filters:
            in_scope.append(MemberOrder.store_id.in_(select(Store.id).where(*store_filters)))
        lo, hi = self._bounds(x.window)
        if x.metric in (pb.CONSUMPTION_METRIC_FIRST_TIME, pb.CONSUMPTION_METRIC_LAST_TIME):
            agg = func.min(MemberOrder.occurred_at) if x.metric == pb.CONSUMPTION_METRIC_FIRST_TIME \
                else func.max(MemberOrder.occurred_at)
            edge = select(agg).where(*in_scope).scalar_subquery()
            return and_(edge >= lo, edge < hi)
        in_window = [*in_scope, MemberOrder.occurred_at >= lo, MemberOrder.occurred_at < hi]
        net = MemberOrder.amount_fen - MemberOrder.refunded_amount_fen
        r = x.range
        if x.metric == pb.CONSUMPTION_METRIC_AVERAGE:
            having = []
            if r.HasField("min"):
                having.append(func.sum(net) >= r.min * func.count())
            if r.HasField("max"):
                having.append(func.sum(net) <= r.max * func.count())
            return exists(select(MemberOrder.customer_id).where(*in_window)
                          .group_by(MemberOrder.customer_id).having(and_(*having)))
        metric = {pb.CONSUMPTION_METRIC_COUNT: func.count(), pb.CONSUMPTION_METRIC_TOTAL: func.sum(net),
                  pb.CONSUMPTION_METRIC_MAX: func.max(net),
                  pb.CONSUMPTION_METRIC_DISTINCT_STORES: func.count(MemberOrder.store_id.distinct())}[x.metric]
        return exists(select(MemberOrder.customer_id).where(*in_window).group_by(MemberOrder.customer_id)
                      .having(self._range(metric, r)))



