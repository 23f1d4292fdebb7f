"""Member list (document 001): search, the crowd filter, sorts, paging, and download for super admins."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.crowd_editor import CHOICE_CALLS, REVIEWS, Choices, CrowdEditor, load_choices
from gateway.console.layout import PAGE_TIMEOUT_S, frame, open_page
from gateway.console.widgets import Pager, attempt, points, table_labels, when, yuan

SORTS = ("MEMBER_ORDER_BY_CREATE_TIME", "MEMBER_ORDER_BY_POINTS_BALANCE", "MEMBER_ORDER_BY_SPEND_TOTAL",
         "MEMBER_ORDER_BY_SPEND_COUNT", "MEMBER_ORDER_BY_LAST_SPEND_TIME", "MEMBER_ORDER_BY_OFFLINE_COUNT",
         "MEMBER_ORDER_BY_OFFLINE_TOTAL", "MEMBER_ORDER_BY_OFFLINE_LAST_TIME", "MEMBER_ORDER_BY_ONLINE_COUNT",
         "MEMBER_ORDER_BY_ONLINE_TOTAL", "MEMBER_ORDER_BY_ONLINE_LAST_TIME")
TRI = ("TRI_STATE_UNSPECIFIED", "TRI_STATE_YES", "TRI_STATE_NO")
EXPORT_CAP = 10_000
LIST_FILTERS = ("search", "levels", "review_statuses", "registration_mall_ids", "card_open_mall_ids", "tag_ids",
                "group_ids")
TRI_FILTERS = ("card_opened", "disabled", "store_member", "level_frozen")


def new_state() -> dict[str, Any]:
    """The list as it first shows: every member, newest first, 20 a page."""
    return {"search": "", "order_by": SORTS[0], "ascending": False, "page_size": 20,
            **{key: TRI[0] for key in TRI_FILTERS}, **{key: [] for key in LIST_FILTERS[1:]}, "crowd_mall_id": ""}


def list_request(state: dict[str, Any], page_token: str, crowd: dict[str, Any], include_total: bool = True,
                 ) -> dict[str, Any]:
    """The ListMembers request for the list as ``state`` and the crowd filter ``crowd`` have it."""
    f: dict[str, Any] = {k: state[k] for k in LIST_FILTERS}
    for key in TRI_FILTERS:
        if state[key] != TRI[0]:
            f[key] = state[key]
    if crowd["groups"]:
        f["crowd"] = crowd
        f["crowd_mall_id"] = state["crowd_mall_id"]
    return {"page_size": state["page_size"], "page_token": page_token, "filter": f, "order_by": state["order_by"],
            "ascending": state["ascending"], "include_total": include_total}


def member_row(t: Any, member: dict[str, Any], levels: dict[int, str]) -> dict[str, Any]:
    stats = member.get("stats") or {}
    card = member.get("card") or {}
    level = int(member.get("level") or 0)
    return {
        "member_id": member["member_id"],
        "card_number": card.get("card_number") or "—",
        "name": member.get("name") or member.get("real_name") or "—",
        "phone": member.get("phone") or "—",
        "level": levels.get(level, t("level.none") if level == 0 else str(level)),
        "points": points(stats.get("points_balance")),
        "spend_total": yuan(stats.get("spend_total_fen")),
        "spend_count": int(stats.get("spend_count") or 0),
        "last_spend": when(stats.get("last_spend_time")),
        "registered": when(member.get("registration_time")),
        "status": t("member.disabled") if member.get("disabled") else t("member.enabled"),
    }


def members_columns(t: Any) -> list[dict[str, Any]]:
    return [
        {"name": "card_number", "label": t("member.card_number"), "field": "card_number", "align": "left"},
        {"name": "name", "label": t("member.name"), "field": "name", "align": "left"},
        {"name": "phone", "label": t("member.phone"), "field": "phone", "align": "left"},
        {"name": "level", "label": t("member.level"), "field": "level", "align": "left"},
        {"name": "points", "label": t("member.points"), "field": "points"},
        {"name": "spend_total", "label": t("member.spend_total"), "field": "spend_total"},
        {"name": "spend_count", "label": t("member.spend_count"), "field": "spend_count"},
        {"name": "last_spend", "label": t("member.last_spend"), "field": "last_spend"},
        {"name": "registered", "label": t("member.registered"), "field": "registered"},
        {"name": "status", "label": t("member.status"), "field": "status"},
    ]


@ui.page("/members", response_timeout=PAGE_TIMEOUT_S)
async def members_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "members.title"):
        state = new_state()
        # The pickers' lists and the first page, all at once rather than one after another.
        first = list_request(state, "", {"groups": []}, include_total=False)
        await page.api.prefetch([*CHOICE_CALLS, ("MemberService.ListMembers", first)])
        choices = await attempt(lambda: load_choices(page.api)) or Choices()
        state["crowd_mall_id"] = next(iter(choices.malls), "")
        pager = Pager()

        def member_filter() -> dict[str, Any]:
            return dict(list_request(state, "", editor.definition())["filter"])

        with ui.row().classes("w-full items-end gap-3"):
            search = ui.input(t("members.search"), placeholder=t("members.search_hint")).props(
                "clearable debounce=400").classes("w-72")
            ui.select({s: t.enum("sort", s) for s in SORTS}, value=state["order_by"], label=t("members.sort"),
                      on_change=lambda e: apply("order_by", e.value)).classes("w-40")
            ui.toggle({False: t("members.descending"), True: t("members.ascending")}, value=False,
                      on_change=lambda e: apply("ascending", e.value))
            ui.space()
            if page.super_admin:
                ui.button(t("members.download"), icon="download", on_click=lambda: download()).props("outline")
        with ui.row().classes("w-full items-end gap-3"):
            for key in ("card_opened", "disabled", "store_member", "level_frozen"):
                ui.select({v: t(f"tri.{key}.{v}") for v in TRI}, value=TRI[0], label=t(f"members.filter.{key}"),
                          on_change=lambda e, key=key: apply(key, e.value)).classes("w-32")
            for key, options in (("levels", choices.levels), ("review_statuses", {r: t.enum("review", r)
                                                                                    for r in REVIEWS}),
                                 ("registration_mall_ids", choices.malls), ("card_open_mall_ids", choices.malls),
                                 ("tag_ids", choices.tags),
                                 ("group_ids", {"default": t("group.default"), **choices.groups})):
                ui.select(options, multiple=True, value=[], label=t(f"members.filter.{key}"),
                          on_change=lambda e, key=key: apply(key, e.value)).classes("w-40").props("use-chips")
        with ui.expansion(t("members.crowd_filter"), icon="filter_alt").classes("w-full bg-white"):
            ui.select(choices.malls, value=state["crowd_mall_id"] or None, label=t("members.crowd_mall"),
                      on_change=lambda e: apply("crowd_mall_id", e.value)).classes("w-48")

            async def crowd_changed() -> None:
                await reload(reset=True)

            editor = CrowdEditor(t, choices, crowd_changed, multi_group=False)

        table = ui.table(columns=members_columns(t), rows=[], row_key="member_id").classes("w-full").props(
            table_labels(t) + " hide-pagination").props(f'aria-label="{t("members.title")}"')
        table.pagination = {"rowsPerPage": 0}
        table.on("rowClick", lambda e: ui.navigate.to(f"/members/{e.args[1]['member_id']}"))
        with ui.row().classes("w-full items-center justify-end gap-3"):
            total = ui.label("").props('data-testid="member-total"')
            ui.select({20: "20", 50: "50", 100: "100"}, value=20, label=t("table.page_size"),
                      on_change=lambda e: apply("page_size", e.value)).classes("w-24")
            previous = ui.button(t("table.previous"), on_click=lambda: turn(back=True)).props("flat")
            page_no = ui.label("")
            following = ui.button(t("table.next"), on_click=lambda: turn(back=False)).props("flat")

        shown = {"generation": 0}  # which reload the page shows, so a late count never labels a newer list

        async def reload(reset: bool = False, count: bool = True) -> None:
            """The page asked for; with its total (a count of every matching member), unless ``count`` is False:
            then the total follows in a second call (count_total) once the rows are on screen."""
            if reset:
                pager.reset()
            shown["generation"] += 1
            table.props("loading")
            request = list_request(state, pager.token, editor.definition(), include_total=count)
            answer = await attempt(lambda: page.api.call("MemberService.ListMembers", request))
            table.props(remove="loading")
            if answer is None:
                return
            pager.got(answer.get("next_page_token", ""))
            table.rows = [member_row(t, m, choices.levels) for m in answer.get("members", [])]
            table.update()
            total.set_text(t("members.total", n=f"{int(answer.get('total_size', 0)):,}") if count
                           else t("members.counting"))
            page_no.set_text(t("table.page", n=pager.index + 1))
            previous.enabled = pager.index > 0
            following.enabled = bool(pager.next_token)

        async def count_total() -> None:
            """The first page's total, counted after the page has drawn (at a million members the count takes
            longer than the page)."""
            generation = shown["generation"]
            request = {**list_request(state, "", editor.definition()), "page_size": 1}
            answer = await attempt(lambda: page.api.call("MemberService.ListMembers", request))
            if answer is not None and generation == shown["generation"]:
                total.set_text(t("members.total", n=f"{int(answer.get('total_size', 0)):,}"))

        async def apply(key: str, value: Any) -> None:
            state[key] = value
            await reload(reset=True)

        async def turn(back: bool) -> None:
            if pager.back() if back else pager.forward():
                await reload()

        async def download() -> None:
            from gateway.console.widgets import download_csv

            notice = ui.notification(t("members.downloading"), spinner=True, timeout=None)
            answer = await attempt(lambda: page.api.call("ImportService.ExportMembers", {
                "filter": member_filter(), "order_by": state["order_by"], "ascending": state["ascending"],
                "max_rows": EXPORT_CAP}))
            notice.dismiss()
            if answer is not None:
                rows = download_csv(answer, "members.csv")
                ui.notify(t("members.downloaded", n=rows) + (t("members.truncated") if answer.get("truncated") else ""),
                          type="positive")

        search.on_value_change(lambda e: apply("search", e.value or ""))
        await reload(reset=True, count=False)
        ui.timer(0, count_total, once=True)  # runs once the browser has the page
    return None
