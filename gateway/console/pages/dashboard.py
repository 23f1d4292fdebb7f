"""Dashboard: member totals, counts by level and review status, the three score distributions, packages, alerts."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import serves
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import attempt

SCORES = ("1", "2", "3", "4", "5")


def _count(rows: list[dict[str, Any]], key: str) -> int:
    return next((int(r.get("count", 0)) for r in rows if str(r.get("key")) == key), 0)


def tile(label: str, value: str, name: str) -> None:
    with ui.card().classes("min-w-40").props(f'aria-label="{label}"'):
        ui.label(label).classes("text-sm text-grey-8")
        ui.label(value).classes("text-2xl font-medium").props(f'data-testid="{name}"')


def bar_chart(title: str, names: list[str], values: list[int]) -> None:
    ui.echart({
        "title": {"text": title, "textStyle": {"fontSize": 14}},
        "animation": False,
        "tooltip": {},
        "grid": {"left": 48, "right": 16, "bottom": 32, "top": 40},
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "data": values}],
    }).classes("w-full h-64")


async def package_counts(page: Page) -> dict[str, int]:
    malls = (await page.api.call("OrganizationService.ListMalls", {"page_size": 1000})).get("malls", [])
    counts = {"total": 0, "PACKAGE_STATUS_UPDATING": 0, "PACKAGE_STATUS_READY": 0, "PACKAGE_STATUS_FAILED": 0}
    for mall in malls:
        answer = await page.api.call("CrowdService.ListPackages", {"mall_id": mall["mall_id"], "page_size": 1000})
        for package in answer.get("packages", []):
            counts["total"] += 1
            counts[package.get("status", "")] = counts.get(package.get("status", ""), 0) + 1
    return counts


@ui.page("/", response_timeout=PAGE_TIMEOUT_S)
async def dashboard_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "dashboard.title"):
        answer = await attempt(lambda: page.api.call("MemberService.GetMemberStatistics", {}))
        stats = (answer or {}).get("statistics", {})
        levels = await attempt(lambda: page.api.call("LevelService.ListLevels", {}))
        level_names = {int(lv["number"]): lv.get("name", "") for lv in (levels or {}).get("levels", [])}
        with ui.row().classes("w-full gap-4"):
            tile(t("dashboard.total"), f"{int(stats.get('total', 0)):,}", "total")
            tile(t("dashboard.card_opened"), f"{int(stats.get('card_opened', 0)):,}", "card-opened")
            tile(t("dashboard.disabled"), f"{int(stats.get('disabled', 0)):,}", "disabled")
            tile(t("dashboard.store_members"), f"{int(stats.get('store_members', 0)):,}", "store-members")
            packages = await attempt(lambda: package_counts(page)) or {}
            tile(t("dashboard.packages"), f"{packages.get('total', 0):,}", "packages")
            if serves("AlertService.ListAlerts"):
                alerts = await attempt(lambda: page.api.call("AlertService.ListAlerts", {"page_size": 1000})) or {}
                tile(t("dashboard.alerts"), f"{len(alerts.get('alerts', [])):,}", "alerts")
        by_level = stats.get("by_level", [])
        by_review = stats.get("by_review_status", [])
        with ui.grid(columns=2).classes("w-full gap-4"):
            with ui.card():
                keys = sorted({str(r.get("key")) for r in by_level}, key=lambda k: int(k) if k.isdigit() else 0)
                bar_chart(t("dashboard.by_level"),
                          [level_names.get(int(k), t("level.none") if k == "0" else k) if k.isdigit() else k
                           for k in keys], [_count(by_level, k) for k in keys])
            with ui.card():
                keys = [str(r.get("key")) for r in by_review]
                bar_chart(t("dashboard.by_review"), [t.enum("review", k) for k in keys],
                          [_count(by_review, k) for k in keys])
            for key, title in (("value_distribution", "dashboard.value"),
                               ("activity_distribution", "dashboard.activity"),
                               ("spending_power_distribution", "dashboard.spending_power")):
                with ui.card():
                    rows = stats.get(key, [])
                    bar_chart(t(title), [t("dashboard.score", score=s) for s in SCORES],
                              [_count(rows, s) for s in SCORES])
    return None
