"""The crowd condition editor: condition groups as the API's ``CrowdDefinition`` JSON.

Used by the member list's crowd filter (one group) and the crowd package builder (groups
joined by OR / EXCLUDE). Every edit calls ``on_change`` with the definition so far, so the
builder can ask for the live size without saving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from gateway.console.i18n import Labels
from gateway.console.widgets import fen_from_yuan, yuan_text

KINDS = ("gender", "birthday", "age", "registration_time", "card_opened", "card_open_time", "card_open_channel",
         "native_card", "level", "level_expiry", "level_change", "store_member", "points_balance", "red_packet_balance",
         "consumption", "online_orders", "tags", "groups", "registration_mall", "interaction_mall", "disabled",
         "review_status")
CHANNELS = ("OPEN_CHANNEL_WECHAT", "OPEN_CHANNEL_ALIPAY", "OPEN_CHANNEL_DOUYIN", "OPEN_CHANNEL_XIAOHONGSHU",
            "OPEN_CHANNEL_IMPORT")
NATIVE_CHANNELS = CHANNELS[:4]
DIRECTIONS = ("LEVEL_CHANGE_DIRECTION_UPGRADED", "LEVEL_CHANGE_DIRECTION_RETAINED", "LEVEL_CHANGE_DIRECTION_DOWNGRADED")
ONLINE_METRICS = ("CONSUMPTION_METRIC_COUNT", "CONSUMPTION_METRIC_TOTAL", "CONSUMPTION_METRIC_LAST_TIME")
METRICS = ("CONSUMPTION_METRIC_FIRST_TIME", "CONSUMPTION_METRIC_LAST_TIME", "CONSUMPTION_METRIC_COUNT",
           "CONSUMPTION_METRIC_TOTAL", "CONSUMPTION_METRIC_MAX", "CONSUMPTION_METRIC_AVERAGE",
           "CONSUMPTION_METRIC_DISTINCT_STORES")
MONEY_METRICS = {"CONSUMPTION_METRIC_TOTAL", "CONSUMPTION_METRIC_MAX", "CONSUMPTION_METRIC_AVERAGE"}
TIME_METRICS = {"CONSUMPTION_METRIC_FIRST_TIME", "CONSUMPTION_METRIC_LAST_TIME"}
WINDOWS = ("last_days", "last_months", "next_days", "next_months", "this_month", "fixed", "ever")
GENDERS = ("GENDER_MALE", "GENDER_FEMALE", "GENDER_UNKNOWN")
REVIEWS = ("REVIEW_STATUS_PENDING", "REVIEW_STATUS_APPROVED", "REVIEW_STATUS_REJECTED")


@dataclass
class Choices:
    """What the pickers offer: levels, tags, groups, malls and stores, by id with a display name."""

    levels: dict[int, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    malls: dict[str, str] = field(default_factory=dict)
    stores: dict[str, str] = field(default_factory=dict)
    store_categories: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)


def window_json(state: dict[str, Any]) -> dict[str, Any] | None:
    kind = state.get("window", "last_days")
    if kind == "this_month":
        return {"this_month": True}
    if kind == "ever":
        return {"ever": True}
    if kind == "fixed":
        if not state.get("from_date") or not state.get("to_date"):
            return None
        return {"fixed": {"from_date": state["from_date"], "to_date": state["to_date"]}}
    count = int(state.get("count") or 0)
    direction, unit = kind.split("_")
    return {direction: {"count": count, "unit": f"RELATIVE_UNIT_{unit.upper()}"}}


def range_json(state: dict[str, Any], money: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for end in ("min", "max"):
        text = state.get(end)
        if text in (None, ""):
            continue
        result[end] = fen_from_yuan(text) if money else int(float(text))
    return result


def condition_json(kind: str, s: dict[str, Any]) -> dict[str, Any]:
    """One condition as the API's JSON (``{"gender": {"genders": [...]}}``)."""
    if kind == "gender":
        body: dict[str, Any] = {"genders": list(s.get("values") or [])}
    elif kind == "birthday":
        body = {"fixed": {"from_month_day": s.get("from_md", ""), "to_month_day": s.get("to_md", "")}}
    elif kind == "age":
        body = {"years": range_json(s)}
    elif kind == "card_opened":
        body = {"opened": bool(s.get("yes", True))}
    elif kind in ("card_open_time", "registration_time"):
        body = {"window": window_json(s)}
    elif kind == "card_open_channel":
        body = {"channels": list(s.get("values") or [])}
    elif kind == "native_card":
        body = {"channel": s.get("channel", NATIVE_CHANNELS[0]), "opened": bool(s.get("yes", True))}
    elif kind == "level_change":
        body = {"window": window_json(s), "directions": list(s.get("values") or [])}
        if s.get("level") not in (None, "", "any"):
            body["level"] = int(s["level"])
    elif kind == "online_orders":
        metric = s.get("metric", "CONSUMPTION_METRIC_COUNT")
        body = {"metric": metric}
        if metric in TIME_METRICS:
            body["window"] = window_json(s)
        else:
            body["range"] = range_json(s, money=metric in MONEY_METRICS)
    elif kind == "level":
        body = {"levels": [int(v) for v in s.get("values") or []], "negate": bool(s.get("negate"))}
    elif kind == "level_expiry":
        body = {"window": window_json(s), "level": int(s.get("level") or 0)}
    elif kind == "store_member":
        body = {"store_member": bool(s.get("yes", True))}
    elif kind == "points_balance":
        body = {"points": range_json(s)}
    elif kind == "red_packet_balance":
        body = {"fen": range_json(s, money=True)}
    elif kind == "consumption":
        metric = s.get("metric", "CONSUMPTION_METRIC_COUNT")
        body = {"scope": {"mall_ids": list(s.get("mall_ids") or []), "categories": list(s.get("categories") or []),
                          "store_ids": list(s.get("store_ids") or [])},
                "window": window_json(s), "metric": metric}
        if metric not in TIME_METRICS:
            body["range"] = range_json(s, money=metric in MONEY_METRICS)
    elif kind == "tags":
        body = {"tag_ids": list(s.get("values") or []), "negate": bool(s.get("negate"))}
    elif kind == "groups":
        body = {"group_ids": list(s.get("values") or [])}
    elif kind in ("registration_mall", "interaction_mall"):
        body = {"mall_ids": list(s.get("values") or [])}
    elif kind == "disabled":
        body = {"disabled": bool(s.get("yes", True))}
    elif kind == "review_status":
        body = {"statuses": list(s.get("values") or [])}
    else:
        raise ValueError(kind)
    return {kind: {k: v for k, v in body.items() if v is not None}}


def default_state(kind: str) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": kind, "window": "last_days", "count": 30}
    if kind in ("consumption", "online_orders"):
        base["metric"] = "CONSUMPTION_METRIC_COUNT"
        base["min"] = 1
    if kind == "level_change":
        base["level"] = "any"
    if kind == "native_card":
        base["channel"] = NATIVE_CHANNELS[0]
    if kind == "birthday":
        base.update(from_md="01-01", to_md="03-31")
    return base


class CrowdEditor:
    """Groups of conditions; ``multi_group=False`` keeps one group (the member list's filter)."""

    def __init__(self, t: Labels, choices: Choices, on_change: Callable[[], Awaitable[None] | None],
                 multi_group: bool = True) -> None:
        self.t, self.choices, self.on_change, self.multi_group = t, choices, on_change, multi_group
        self.groups: list[dict[str, Any]] = [{"join": "GROUP_JOIN_INCLUDE", "conditions": []}]
        self.container = ui.column().classes("w-full gap-2")
        self.render()

    def definition(self) -> dict[str, Any]:
        groups = []
        for index, group in enumerate(self.groups):
            conditions = [condition_json(c["kind"], c) for c in group["conditions"]]
            if not conditions:
                continue
            groups.append({"join": "GROUP_JOIN_INCLUDE" if index == 0 else group["join"], "conditions": conditions})
        return {"groups": groups}

    def load(self, definition: dict[str, Any]) -> None:
        """Shows a saved definition (conditions are edited as they were saved)."""
        self.groups = []
        for group in definition.get("groups", []) or [{}]:
            conditions = []
            for condition in group.get("conditions", []):
                kind, body = next(iter(condition.items()))
                conditions.append(state_from_json(kind, body))
            self.groups.append({"join": group.get("join", "GROUP_JOIN_OR"), "conditions": conditions})
        if not self.groups:
            self.groups = [{"join": "GROUP_JOIN_INCLUDE", "conditions": []}]
        self.render()

    async def changed(self) -> None:
        result = self.on_change()
        if result is not None:
            await result

    def render(self) -> None:
        t = self.t
        self.container.clear()
        with self.container:
            for index, group in enumerate(self.groups):
                if index > 0:
                    ui.toggle({"GROUP_JOIN_OR": t("crowd.join.or"), "GROUP_JOIN_EXCLUDE": t("crowd.join.exclude")},
                              value=group["join"], on_change=lambda e, g=group: self._set(g, "join", e.value)
                              ).props(f'aria-label="{t("crowd.join")} {index + 1}"')
                label = t("crowd.group", n=index + 1) if self.multi_group else t("crowd.conditions")
                with ui.card().classes("w-full").props(f'aria-label="{label}"'):
                    with ui.row().classes("items-center justify-between w-full"):
                        ui.label(label).classes("font-medium")
                        if self.multi_group and index > 0:
                            ui.button(t("crowd.remove_group"), on_click=lambda i=index: self._drop_group(i)
                                      ).props("flat dense color=negative")
                    ui.label(t("crowd.and_hint")).classes("text-xs text-grey-7")
                    for condition in group["conditions"]:
                        self._condition_row(group, condition)
                    options = {k: t(f"crowd.kind.{k}") for k in KINDS}
                    ui.select(options, label=t("crowd.add_condition"), value=None,
                              on_change=lambda e, g=group: self._add(g, e.value)).classes("w-64")
            if self.multi_group:
                ui.button(t("crowd.add_group"), icon="add", on_click=self._add_group).props("outline")

    async def _set(self, state: dict[str, Any], key: str, value: Any) -> None:
        state[key] = value
        await self.changed()

    async def _add(self, group: dict[str, Any], kind: str | None) -> None:
        if not kind:
            return
        group["conditions"].append(default_state(kind))
        self.render()
        await self.changed()

    async def _add_group(self) -> None:
        self.groups.append({"join": "GROUP_JOIN_OR", "conditions": []})
        self.render()

    async def _drop_group(self, index: int) -> None:
        self.groups.pop(index)
        self.render()
        await self.changed()

    async def _drop(self, group: dict[str, Any], state: dict[str, Any]) -> None:
        group["conditions"].remove(state)
        self.render()
        await self.changed()

    def _condition_row(self, group: dict[str, Any], s: dict[str, Any]) -> None:
        t, c = self.t, self.choices
        kind = s["kind"]
        with ui.row().classes("items-center gap-2 w-full border-l-4 border-blue-2 pl-2").props(
                f'aria-label="{t(f"crowd.kind.{kind}")}"'):
            ui.label(t(f"crowd.kind.{kind}")).classes("w-28 font-medium")
            if kind == "gender":
                self._multi(s, {g: t.enum("gender", g) for g in GENDERS})
            elif kind == "review_status":
                self._multi(s, {r: t.enum("review", r) for r in REVIEWS})
            elif kind == "birthday":
                self._text(s, "from_md", t("crowd.from_md"), "w-28")
                self._text(s, "to_md", t("crowd.to_md"), "w-28")
            elif kind in ("age", "points_balance", "red_packet_balance"):
                unit = {"age": "crowd.unit.years", "points_balance": "crowd.unit.points",
                        "red_packet_balance": "crowd.unit.yuan"}[kind]
                self._range(s, t(unit))
            elif kind in ("card_opened", "store_member", "disabled"):
                ui.toggle({True: t("common.yes"), False: t("common.no")}, value=s.get("yes", True),
                          on_change=lambda e: self._set(s, "yes", e.value))
            elif kind in ("card_open_time", "registration_time"):
                self._window(s)
            elif kind == "card_open_channel":
                self._multi(s, {ch: t.enum("channel", ch) for ch in CHANNELS})
            elif kind == "native_card":
                ui.select({ch: t.enum("channel", ch) for ch in NATIVE_CHANNELS}, value=s.get("channel"),
                          label=t("crowd.channel"), on_change=lambda e: self._set(s, "channel", e.value)
                          ).classes("w-32")
                ui.toggle({True: t("crowd.native.opened"), False: t("crowd.native.not_opened")},
                          value=s.get("yes", True), on_change=lambda e: self._set(s, "yes", e.value))
            elif kind == "level_change":
                self._multi(s, {d: t.enum("direction", d) for d in DIRECTIONS})
                ui.select({"any": t("crowd.any_level"), **c.levels}, value=s.get("level", "any"),
                          label=t("crowd.level_to"), on_change=lambda e: self._set(s, "level", e.value)
                          ).classes("w-36")
                self._window(s)
            elif kind == "online_orders":
                ui.select({m: t.enum("online_metric", m) for m in ONLINE_METRICS}, value=s["metric"],
                          label=t("crowd.metric"), on_change=lambda e: self._metric(s, e.value)).classes("w-40")
                if s["metric"] in TIME_METRICS:
                    self._window(s)
                else:
                    money = s["metric"] in MONEY_METRICS
                    self._range(s, t("crowd.unit.yuan") if money else t("crowd.unit.count"))
            elif kind == "level":
                self._multi(s, {n: name for n, name in c.levels.items()})
                ui.checkbox(t("crowd.negate"), value=bool(s.get("negate")),
                            on_change=lambda e: self._set(s, "negate", e.value))
            elif kind == "level_expiry":
                ui.select({0: t("crowd.any_level"), **c.levels}, value=int(s.get("level") or 0),
                          label=t("crowd.level"), on_change=lambda e: self._set(s, "level", e.value)).classes("w-36")
                self._window(s)
            elif kind == "consumption":
                ui.select({m: t.enum("metric", m) for m in METRICS}, value=s["metric"], label=t("crowd.metric"),
                          on_change=lambda e: self._metric(s, e.value)).classes("w-40")
                self._window(s)
                ui.select(c.malls, multiple=True, value=list(s.get("mall_ids") or []), label=t("crowd.scope.malls"),
                          on_change=lambda e: self._set(s, "mall_ids", e.value)).classes("w-44").props("use-chips")
                ui.select(c.store_categories, multiple=True, value=list(s.get("categories") or []),
                          label=t("crowd.scope.categories"),
                          on_change=lambda e: self._set(s, "categories", e.value)).classes("w-40").props("use-chips")
                ui.select(c.stores, multiple=True, value=list(s.get("store_ids") or []), label=t("crowd.scope.stores"),
                          on_change=lambda e: self._set(s, "store_ids", e.value)).classes("w-44").props("use-chips")
                if s["metric"] not in TIME_METRICS:
                    money = s["metric"] in MONEY_METRICS
                    self._range(s, t("crowd.unit.yuan") if money else t("crowd.unit.count"))
            elif kind == "tags":
                self._multi(s, c.tags)
                ui.checkbox(t("crowd.negate"), value=bool(s.get("negate")),
                            on_change=lambda e: self._set(s, "negate", e.value))
            elif kind == "groups":
                self._multi(s, {"default": t("group.default"), **c.groups})
            elif kind in ("registration_mall", "interaction_mall"):
                self._multi(s, c.malls)
            ui.space()
            ui.button(icon="close", on_click=lambda: self._drop(group, s)).props(
                f'flat dense round aria-label="{t("crowd.remove_condition")}"')

    async def _metric(self, s: dict[str, Any], value: str) -> None:
        s["metric"] = value
        self.render()
        await self.changed()

    def _multi(self, s: dict[str, Any], options: dict[Any, str]) -> None:
        ui.select(options, multiple=True, value=list(s.get("values") or []), label=self.t("crowd.values"),
                  on_change=lambda e: self._set(s, "values", e.value)).classes("min-w-48").props("use-chips")

    def _text(self, s: dict[str, Any], key: str, label: str, width: str) -> None:
        ui.input(label, value=str(s.get(key, "")),
                 on_change=lambda e: self._set(s, key, e.value)).classes(width).props("debounce=300")

    def _range(self, s: dict[str, Any], unit: str) -> None:
        for end in ("min", "max"):
            ui.input(f'{self.t(f"crowd.{end}")} ({unit})', value="" if s.get(end) is None else str(s.get(end)),
                     on_change=lambda e, end=end: self._set(s, end, e.value)).classes("w-28").props("debounce=300")

    def _window(self, s: dict[str, Any]) -> None:
        t = self.t
        ui.select({w: t(f"crowd.window.{w}") for w in WINDOWS}, value=s.get("window", "last_days"),
                  label=t("crowd.window"), on_change=lambda e: self._window_kind(s, e.value)).classes("w-32")
        kind = s.get("window", "last_days")
        if kind == "fixed":
            self._text(s, "from_date", t("crowd.from_date"), "w-32")
            self._text(s, "to_date", t("crowd.to_date"), "w-32")
        elif kind not in ("this_month", "ever"):
            ui.number(t("crowd.count"), value=int(s.get("count") or 0), min=1, precision=0,
                      on_change=lambda e: self._set(s, "count", int(e.value or 0))).classes("w-20")

    async def _window_kind(self, s: dict[str, Any], value: str) -> None:
        s["window"] = value
        self.render()
        await self.changed()


def state_from_json(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The editor's state for a saved condition (the reverse of condition_json)."""
    s = default_state(kind)
    window = body.get("window") or {}
    if "this_month" in window:
        s["window"] = "this_month"
    elif "ever" in window:
        s["window"] = "ever"
    elif "fixed" in window:
        s.update(window="fixed", from_date=window["fixed"].get("from_date", ""),
                 to_date=window["fixed"].get("to_date", ""))
    else:
        for direction in ("last", "next"):
            if direction in window:
                unit = str(window[direction].get("unit", "RELATIVE_UNIT_DAYS")).removeprefix("RELATIVE_UNIT_").lower()
                s.update(window=f"{direction}_{unit}", count=int(window[direction].get("count", 0)))
    for key in ("years", "points", "fen", "range"):
        if key in body:
            for end in ("min", "max"):
                if end in body[key]:
                    value = int(body[key][end])
                    money = key == "fen" or body.get("metric") in MONEY_METRICS
                    s[end] = yuan_text(value) if money else str(value)
    values = (body.get("genders") or body.get("levels") or body.get("tag_ids") or body.get("group_ids")
              or body.get("mall_ids") or body.get("statuses") or body.get("channels") or body.get("directions"))
    if values is not None:
        s["values"] = values
    if kind == "consumption":
        scope = body.get("scope") or {}
        s.update(metric=body.get("metric", "CONSUMPTION_METRIC_COUNT"), mall_ids=scope.get("mall_ids", []),
                 categories=scope.get("categories", []), store_ids=scope.get("store_ids", []))
        if "range" not in body:
            s.pop("min", None)
    for key in ("opened", "store_member", "disabled"):
        if key in body:
            s["yes"] = bool(body[key])
    if "negate" in body:
        s["negate"] = bool(body["negate"])
    if kind == "birthday" and "fixed" in body:
        s.update(from_md=body["fixed"].get("from_month_day", ""), to_md=body["fixed"].get("to_month_day", ""))
    if kind == "level_expiry":
        s["level"] = int(body.get("level", 0))
    if kind == "level_change":
        s["level"] = int(body["level"]) if "level" in body else "any"
    if kind == "native_card":
        s["channel"] = body.get("channel", NATIVE_CHANNELS[0])
    if kind == "online_orders":
        s["metric"] = body.get("metric", "CONSUMPTION_METRIC_COUNT")
        if "range" not in body:
            s.pop("min", None)
    return s


CHOICE_CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("LevelService.ListLevels", {}), ("ClassificationService.ListTags", {"page_size": 1000}),
    ("ClassificationService.ListCustomerGroups", {"page_size": 1000}),
    ("OrganizationService.ListMalls", {"page_size": 1000}), ("OrganizationService.ListStores", {"page_size": 1000}))


async def load_choices(api: Any) -> Choices:
    """Levels, tags, groups, malls and stores the person may pick from (each list read once, all at once; a list
    read in the last minute is remembered: ListLevels and ListCustomerGroups count members, which at a million
    members takes seconds, and a picker needs only the names)."""
    answers = await asyncio.gather(*(api.call_remembered(rpc, request) for rpc, request in CHOICE_CALLS))
    levels, tags, groups, malls, stores = (answers[0].get("levels", []), answers[1].get("tags", []),
                                           answers[2].get("groups", []), answers[3].get("malls", []),
                                           answers[4].get("stores", []))
    return Choices(
        levels={int(lv["number"]): lv.get("name") or str(lv["number"]) for lv in levels},
        tags={tg["tag_id"]: tg.get("name", tg["tag_id"]) for tg in tags},
        groups={g["group_id"]: g.get("name", g["group_id"]) for g in groups if not g.get("is_default")},
        malls={m["mall_id"]: m.get("name", m["mall_id"]) for m in malls},
        stores={s["store_id"]: s.get("name", s["store_id"]) for s in stores},
        store_categories=sorted({s["category"] for s in stores if s.get("category")}),
        brands=sorted({s["brand"] for s in stores if s.get("brand")}),
    )
