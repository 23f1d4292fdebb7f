"""A CrowdDefinition becomes a segment-engine package, validated field by field.

Relative windows resolve against ``today`` in the package's mall time zone:
- last N days: today-N+1 .. today;  next N days: today .. today+N-1;
- last N months: the 1st of the month N-1 months back .. today;  next N months: today .. the last
  day of the month N-1 months ahead;  this month: its 1st .. its last day.
Birthdays compare month and day only. Ages are whole years as of today. A consumption
condition with no orders in scope matches nobody (as SQL's GROUP BY ... HAVING).
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from crowdpack.customer.v1 import crowd_pb2 as pb
from crowdpack.customer.v1 import member_pb2
from services.common.errors import InvalidArgument
from services.customer.crowds.columns import (
    DEFAULT_GROUP,
    LIVE,
    day_number,
    group_bitmap,
    interaction_bitmap,
    tag_bitmap,
)

MAX_GROUPS = 20
MAX_CONDITIONS = 30
MIN_DAY, MAX_DAY = -(2**31), 2**31 - 1
DIRECTIONS = (pb.LEVEL_CHANGE_DIRECTION_UPGRADED, pb.LEVEL_CHANGE_DIRECTION_RETAINED,
              pb.LEVEL_CHANGE_DIRECTION_DOWNGRADED)
# Names of the bitmaps read from the level change records for one evaluation (unique in the process).
LEVEL_CHANGES = "adhoc:level-changes:"
_evaluations = itertools.count(1)
NATIVE_CHANNELS = (member_pb2.OPEN_CHANNEL_WECHAT, member_pb2.OPEN_CHANNEL_ALIPAY, member_pb2.OPEN_CHANNEL_DOUYIN,
                   member_pb2.OPEN_CHANNEL_XIAOHONGSHU)
JOIN: dict[int, str] = {pb.GROUP_JOIN_INCLUDE: "include", pb.GROUP_JOIN_OR: "or", pb.GROUP_JOIN_EXCLUDE: "exclude"}
METRIC = {pb.CONSUMPTION_METRIC_COUNT: "count", pb.CONSUMPTION_METRIC_TOTAL: "sum", pb.CONSUMPTION_METRIC_MAX: "max",
          pb.CONSUMPTION_METRIC_AVERAGE: "avg", pb.CONSUMPTION_METRIC_DISTINCT_STORES: "distinct_stores"}


@dataclass
class Catalogue:
    """What a definition refers to: stores by their attributes, and which ids exist."""

    # store id -> (mall id, category, business format, floor, tags)
    stores: dict[int, tuple[int, str, str, str, frozenset[str]]]
    malls: set[int]
    tags: set[int]
    groups: set[int]
    levels: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class LevelChanges:
    """Members whose level moved in a window: the days (crowd time zone), the directions (empty = any), the level
    moved to (None = any). Answered from the level change records when the package is evaluated."""

    from_day: int
    to_day: int
    directions: tuple[int, ...]
    level: int | None


@dataclass
class Translation:
    package: dict[str, Any]
    # Unions the package refers to by name: name -> the bitmap names to OR together.
    unions: dict[str, list[str]] = field(default_factory=dict)
    # Every plain bitmap the package or its unions name (a tag nobody carries yet has none in the index).
    bitmaps: set[str] = field(default_factory=set)
    # Bitmaps read from history at each evaluation (set before it, dropped after): name -> what they hold.
    level_changes: dict[str, LevelChanges] = field(default_factory=dict)

    def package_bitmaps(self) -> set[str]:
        return self.bitmaps


def add_months(d: date, months: int) -> date:
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


def last_of_month(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def parse_date(value: str, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("must be a date as YYYY-MM-DD", field=where) from None


def window_dates(w: pb.DateWindow, today: date, where: str) -> tuple[date, date]:
    kind = w.WhichOneof("window")
    if kind is None:
        raise InvalidArgument("a fixed, last, next or this_month window is required", field=where)
    if kind == "fixed":
        start, end = parse_date(w.fixed.from_date, f"{where}.fixed.from_date"), \
            parse_date(w.fixed.to_date, f"{where}.fixed.to_date")
        if start > end:
            raise InvalidArgument("from_date must not be after to_date", field=f"{where}.fixed")
        return start, end
    if kind == "this_month":
        if not w.this_month:
            raise InvalidArgument("set this_month to true", field=f"{where}.this_month")
        return today.replace(day=1), last_of_month(today)
    if kind == "ever":
        if not w.ever:
            raise InvalidArgument("set ever to true", field=f"{where}.ever")
        return date.min, date.max
    span: pb.RelativeSpan = getattr(w, kind)
    if not 1 <= span.count <= 3660:
        raise InvalidArgument("count must be 1..3660", field=f"{where}.{kind}.count")
    if span.unit == pb.RELATIVE_UNIT_DAYS:
        return (today - timedelta(days=span.count - 1), today) if kind == "last" else \
            (today, today + timedelta(days=span.count - 1))
    if span.unit == pb.RELATIVE_UNIT_MONTHS:
        return (add_months(today.replace(day=1), -(span.count - 1)), today) if kind == "last" else \
            (today, last_of_month(add_months(today.replace(day=1), span.count - 1)))
    raise InvalidArgument("unit must be RELATIVE_UNIT_DAYS or RELATIVE_UNIT_MONTHS", field=f"{where}.{kind}.unit")


def window_days(w: pb.DateWindow, today: date, where: str) -> tuple[int, int]:
    start, end = window_dates(w, today, where)
    return max(MIN_DAY, day_number(start)), min(MAX_DAY, day_number(end))


def month_day(value: str, where: str) -> int:
    try:
        month, day = (int(p) for p in value.split("-"))
        date(2000, month, day)  # a leap year, so 02-29 is valid
    except ValueError:
        raise InvalidArgument("must be a month and day as MM-DD", field=where) from None
    return month * 100 + day


def month_days_between(start: int, end: int) -> list[int]:
    """Every MMDD from start to end inclusive, wrapping past 12-31."""
    all_days = [m * 100 + d for m in range(1, 13) for d in range(1, calendar.monthrange(2000, m)[1] + 1)]
    if start <= end:
        return [x for x in all_days if start <= x <= end]
    return [x for x in all_days if x >= start or x <= end]


def range_condition(target: dict[str, Any], r: pb.Int64Range, where: str, *, minimum: int = 0) -> list[dict]:
    """``target`` (a field or orders condition without op/value) compared with the range."""
    has_min, has_max = r.HasField("min"), r.HasField("max")
    if not has_min and not has_max:
        raise InvalidArgument("give min, max or both", field=where)
    for end, present in (("min", has_min), ("max", has_max)):
        if present and not minimum <= getattr(r, end) <= 9 * 10**15:
            raise InvalidArgument(f"must be {minimum}..9e15", field=f"{where}.{end}")
    if has_min and has_max:
        if r.min > r.max:
            raise InvalidArgument("min must not exceed max", field=where)
        return [{**target, "op": "between", "value": [r.min, r.max]}]
    if has_min:
        return [{**target, "op": "gte", "value": r.min}]
    return [{**target, "op": "lte", "value": r.max}]


class Translator:
    def __init__(self, catalogue: Catalogue, today: date) -> None:
        self.catalogue = catalogue
        self.today = today
        self.unions: dict[str, list[str]] = {}
        self.bitmaps: set[str] = set()
        self.level_changes: dict[str, LevelChanges] = {}

    def translate(self, definition: pb.CrowdDefinition, where: str = "definition") -> Translation:
        if not definition.groups:
            raise InvalidArgument("a package needs at least one condition group", field=f"{where}.groups")
        if len(definition.groups) > MAX_GROUPS:
            raise InvalidArgument(f"at most {MAX_GROUPS} groups", field=f"{where}.groups")
        groups = []
        for i, group in enumerate(definition.groups):
            gw = f"{where}.groups[{i}]"
            join = group.join or (pb.GROUP_JOIN_INCLUDE if i == 0 else 0)
            if join not in JOIN:
                raise InvalidArgument("join must be GROUP_JOIN_INCLUDE, _OR or _EXCLUDE", field=f"{gw}.join")
            if (i == 0) != (join == pb.GROUP_JOIN_INCLUDE):
                raise InvalidArgument("the first group includes; later groups join with OR or EXCLUDE",
                                      field=f"{gw}.join")
            if not group.conditions:
                raise InvalidArgument("a group needs at least one condition", field=f"{gw}.conditions")
            if len(group.conditions) > MAX_CONDITIONS:
                raise InvalidArgument(f"at most {MAX_CONDITIONS} conditions", field=f"{gw}.conditions")
            conditions: list[dict[str, Any]] = []
            for j, condition in enumerate(group.conditions):
                conditions += self.condition(condition, f"{gw}.conditions[{j}]")
            groups.append({"op": JOIN[join], "all": conditions})
        # Only live members (not deleted, not business customers), and no virtual ones unless asked.
        groups.append({"op": "exclude", "all": [{"not_bitmap": LIVE}]})
        if not definition.include_virtual:
            groups.append({"op": "exclude", "all": [{"field": "virtual", "op": "eq", "value": 1}]})
        return Translation({"groups": groups}, dict(self.unions), set(self.bitmaps), dict(self.level_changes))

    def condition(self, c: pb.Condition, where: str) -> list[dict[str, Any]]:
        kind = c.WhichOneof("kind")
        if kind is None:
            raise InvalidArgument("a condition needs a kind", field=where)
        handler: Callable[[Any, str], list[dict[str, Any]]] = getattr(self, f"_{kind}")
        return handler(getattr(c, kind), f"{where}.{kind}")

    # --- basic

    def _gender(self, c: pb.GenderCondition, where: str) -> list[dict]:
        if not c.genders:
            raise InvalidArgument("name at least one gender", field=f"{where}.genders")
        for g in c.genders:
            if g not in member_pb2.Gender.values() or g == 0:
                raise InvalidArgument("unknown gender", field=f"{where}.genders")
        return [{"field": "gender", "op": "in", "value": sorted(set(c.genders))}]

    def _birthday(self, c: pb.BirthdayCondition, where: str) -> list[dict]:
        kind = c.WhichOneof("when")
        if kind == "fixed":
            start = month_day(c.fixed.from_month_day, f"{where}.fixed.from_month_day")
            end = month_day(c.fixed.to_month_day, f"{where}.fixed.to_month_day")
            days = month_days_between(start, end)
        elif kind == "relative":
            first, last = window_dates(c.relative, self.today, f"{where}.relative")
            if (last - first).days >= 366:
                days = month_days_between(101, 1231)
            else:
                span = [first + timedelta(days=k) for k in range((last - first).days + 1)]
                days = sorted({d.month * 100 + d.day for d in span})
                if any(d.month == 2 and d.day == 28 and not calendar.isleap(d.year) for d in span):
                    days.append(229)  # in a common year a Feb 29 birthday falls on Feb 28
        else:
            raise InvalidArgument("a fixed month-day range or a relative window is required", field=where)
        return [{"field": "birth_mmdd", "op": "in", "value": sorted(set(days))}]

    def _age(self, c: pb.AgeCondition, where: str) -> list[dict]:
        r = c.years
        if not r.HasField("min") and not r.HasField("max"):
            raise InvalidArgument("give min, max or both", field=f"{where}.years")
        low, high = (r.min if r.HasField("min") else 0), (r.max if r.HasField("max") else 150)
        if not 0 <= low <= high <= 150:
            raise InvalidArgument("ages are 0..150 with min <= max", field=f"{where}.years")
        # age >= low  <=>  born on or before today minus low years; age <= high  <=>  born after today minus high+1.
        latest = add_months(self.today, -12 * low)
        earliest = add_months(self.today, -12 * (high + 1)) + timedelta(days=1)
        return [{"field": "birth_day", "op": "between", "value": [day_number(earliest), day_number(latest)]}]

    # --- card

    def _card_opened(self, c: pb.CardOpenedCondition, where: str) -> list[dict]:
        return [{"field": "card_opened", "op": "eq", "value": int(c.opened)}]

    def _card_open_time(self, c: pb.CardOpenTimeCondition, where: str) -> list[dict]:
        start, end = window_days(c.window, self.today, f"{where}.window")
        return [{"field": "card_open_day", "op": "between", "value": [start, end]}]

    def _card_open_channel(self, c: pb.CardOpenChannelCondition, where: str) -> list[dict]:
        if not c.channels:
            raise InvalidArgument("name at least one channel", field=f"{where}.channels")
        for channel in c.channels:
            if channel not in member_pb2.OpenChannel.values() or channel == 0:
                raise InvalidArgument("unknown channel", field=f"{where}.channels")
        return [{"field": "card_opened", "op": "eq", "value": 1},
                {"field": "card_open_channel", "op": "in", "value": sorted(set(c.channels))}]

    def _native_card(self, c: pb.NativeCardCondition, where: str) -> list[dict]:
        if c.channel not in NATIVE_CHANNELS:
            raise InvalidArgument("must be OPEN_CHANNEL_WECHAT, _ALIPAY, _DOUYIN or _XIAOHONGSHU",
                                  field=f"{where}.channel")
        if c.opened:
            return [{"field": "card_opened", "op": "eq", "value": 1},
                    {"field": "card_open_channel", "op": "eq", "value": c.channel}]
        # Not opened there: no card at all, or a card opened through another channel. A member without a card has
        # no channel (0), so one comparison says both.
        return [{"field": "card_open_channel", "op": "not_in", "value": [c.channel]}]

    def _level(self, c: pb.LevelCondition, where: str) -> list[dict]:
        if not c.levels:
            raise InvalidArgument("name at least one level", field=f"{where}.levels")
        for level in c.levels:
            if not 0 <= level <= 10:
                raise InvalidArgument("levels are 0..10", field=f"{where}.levels")
        return [{"field": "level", "op": "not_in" if c.negate else "in", "value": sorted(set(c.levels))}]

    def _level_expiry(self, c: pb.LevelExpiryCondition, where: str) -> list[dict]:
        start, end = window_days(c.window, self.today, f"{where}.window")
        if not 0 <= c.level <= 10:
            raise InvalidArgument("level is 0 (any) or 1..10", field=f"{where}.level")
        out: list[dict[str, object]] = [{"field": "level_expire_day", "op": "between", "value": [start, end]}]
        out.append({"field": "level", "op": "eq", "value": c.level} if c.level else
                   {"field": "level", "op": "gt", "value": 0})
        return out

    def _level_change(self, c: pb.LevelChangeCondition, where: str) -> list[dict]:
        start, end = window_days(c.window, self.today, f"{where}.window")
        for direction in c.directions:
            if direction not in DIRECTIONS:
                raise InvalidArgument("unknown direction", field=f"{where}.directions")
        if c.HasField("level") and not 0 <= c.level <= 10:
            raise InvalidArgument("levels are 0..10", field=f"{where}.level")
        wanted = LevelChanges(start, end, tuple(sorted(set(c.directions))), c.level if c.HasField("level") else None)
        name = f"{LEVEL_CHANGES}{next(_evaluations)}"
        self.level_changes[name] = wanted
        return [{"bitmap": name}]

    def _store_member(self, c: pb.StoreMemberCondition, where: str) -> list[dict]:
        return [{"field": "store_member", "op": "eq", "value": int(c.store_member)}]

    # --- assets

    def _points_balance(self, c: pb.PointsBalanceCondition, where: str) -> list[dict]:
        return range_condition({"field": "points"}, c.points, f"{where}.points")

    def _red_packet_balance(self, c: pb.RedPacketBalanceCondition, where: str) -> list[dict]:
        return range_condition({"field": "red_packet"}, c.fen, f"{where}.fen")

    # --- offline consumption

    def stores_in(self, scope: pb.StoreScope, where: str) -> list[int] | None:
        malls = {self._id(m, f"{where}.mall_ids") for m in scope.mall_ids}
        for mall in malls:
            if mall not in self.catalogue.malls:
                raise InvalidArgument(f"no mall {mall}", field=f"{where}.mall_ids")
        explicit = {self._id(s, f"{where}.store_ids") for s in scope.store_ids}
        for store in explicit:
            if store not in self.catalogue.stores:
                raise InvalidArgument(f"no store {store}", field=f"{where}.store_ids")
        narrowed = scope.categories or scope.business_formats or scope.floors or scope.store_tags or explicit
        if not malls and not narrowed:
            return None
        chosen = []
        for store_id, (mall, category, fmt, floor, tags) in self.catalogue.stores.items():
            if malls and mall not in malls:
                continue
            if scope.categories and category not in scope.categories:
                continue
            if scope.business_formats and fmt not in scope.business_formats:
                continue
            if scope.floors and floor not in scope.floors:
                continue
            if scope.store_tags and not tags.intersection(scope.store_tags):
                continue
            if explicit and store_id not in explicit:
                continue
            chosen.append(store_id)
        return sorted(chosen)

    def _consumption(self, c: pb.ConsumptionCondition, where: str) -> list[dict]:
        stores = self.stores_in(c.scope, f"{where}.scope")
        start, end = window_days(c.window, self.today, f"{where}.window")
        if c.metric in (pb.CONSUMPTION_METRIC_FIRST_TIME, pb.CONSUMPTION_METRIC_LAST_TIME):
            metric = "first_day" if c.metric == pb.CONSUMPTION_METRIC_FIRST_TIME else "last_day"
            return [{"orders": {"stores": stores, "from_day": MIN_DAY, "to_day": MAX_DAY}, "metric": metric,
                     "op": "between", "value": [start, end]}]
        if c.metric not in METRIC:
            raise InvalidArgument("unknown metric", field=f"{where}.metric")
        target = {"orders": {"stores": stores, "from_day": start, "to_day": end}, "metric": METRIC[c.metric]}
        return range_condition(target, c.range, f"{where}.range")

    # --- online orders

    def _online_orders(self, c: pb.OnlineOrdersCondition, where: str) -> list[dict]:
        if c.metric == pb.CONSUMPTION_METRIC_LAST_TIME:
            start, end = window_days(c.window, self.today, f"{where}.window")
            return [{"field": "online_last_day", "op": "between", "value": [start, end]}]
        columns = {pb.CONSUMPTION_METRIC_COUNT: "online_count", pb.CONSUMPTION_METRIC_TOTAL: "online_total"}
        if c.metric not in columns:
            raise InvalidArgument("must be CONSUMPTION_METRIC_COUNT, _TOTAL or _LAST_TIME", field=f"{where}.metric")
        return range_condition({"field": columns[c.metric]}, c.range, f"{where}.range")

    # --- other

    def _union(self, names: list[str]) -> str:
        self.bitmaps.update(names)
        if len(names) == 1:
            return names[0]
        name = "union(" + ",".join(sorted(names)) + ")"
        self.unions[name] = sorted(names)
        return name

    def _tags(self, c: pb.TagCondition, where: str) -> list[dict]:
        if not c.tag_ids:
            raise InvalidArgument("name at least one tag", field=f"{where}.tag_ids")
        ids = {self._id(t, f"{where}.tag_ids") for t in c.tag_ids}
        for tag in ids:
            if tag not in self.catalogue.tags:
                raise InvalidArgument(f"no tag {tag}", field=f"{where}.tag_ids")
        name = self._union([tag_bitmap(t) for t in ids])
        return [{"not_bitmap" if c.negate else "bitmap": name}]

    def _groups(self, c: pb.GroupCondition, where: str) -> list[dict]:
        if not c.group_ids:
            raise InvalidArgument("name at least one group", field=f"{where}.group_ids")
        names = set()
        for g in c.group_ids:
            if g == "default":
                names.add(DEFAULT_GROUP)
                continue
            group = self._id(g, f"{where}.group_ids")
            if group not in self.catalogue.groups:
                raise InvalidArgument(f"no group {group}", field=f"{where}.group_ids")
            names.add(group_bitmap(group))
        return [{"bitmap": self._union(sorted(names))}]

    def _registration_time(self, c: pb.RegistrationTimeCondition, where: str) -> list[dict]:
        start, end = window_days(c.window, self.today, f"{where}.window")
        return [{"field": "registration_day", "op": "between", "value": [start, end]}]

    def _registration_mall(self, c: pb.MallCondition, where: str) -> list[dict]:
        return [{"field": "registration_mall", "op": "in", "value": sorted(self._malls(c, where))}]

    def _interaction_mall(self, c: pb.MallCondition, where: str) -> list[dict]:
        return [{"bitmap": self._union([interaction_bitmap(m) for m in self._malls(c, where)])}]

    def _malls(self, c: pb.MallCondition, where: str) -> set[int]:
        if not c.mall_ids:
            raise InvalidArgument("name at least one mall", field=f"{where}.mall_ids")
        malls = {self._id(m, f"{where}.mall_ids") for m in c.mall_ids}
        for mall in malls:
            if mall not in self.catalogue.malls:
                raise InvalidArgument(f"no mall {mall}", field=f"{where}.mall_ids")
        return malls

    def _disabled(self, c: pb.DisabledCondition, where: str) -> list[dict]:
        return [{"field": "disabled", "op": "eq", "value": int(c.disabled)}]

    def _review_status(self, c: pb.ReviewStatusCondition, where: str) -> list[dict]:
        if not c.statuses:
            raise InvalidArgument("name at least one status", field=f"{where}.statuses")
        for s in c.statuses:
            if s not in member_pb2.ReviewStatus.values() or s == 0:
                raise InvalidArgument("unknown review status", field=f"{where}.statuses")
        return [{"field": "review_status", "op": "in", "value": sorted(set(c.statuses))}]

    @staticmethod
    def _id(value: str, where: str) -> int:
        if not value.isdigit() or len(value) > 18:
            raise InvalidArgument("must be a numeric id", field=where)
        return int(value)
