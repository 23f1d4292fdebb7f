"""A member's orders on the member detail (document 001, 消费详情): filtered by mall, store, brand,
channel and trade time, newest first, paged (``LedgerService.ListMemberOrders``)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from nicegui import ui

from gateway.console.api import Api, ApiError
from gateway.console.crowd_editor import Choices
from gateway.console.i18n import Labels
from gateway.console.widgets import DISPLAY_ZONE, Form, Pager, points, table_labels, when, yuan

CHANNELS = ("ORDER_CHANNEL_FAST_POINTS", "ORDER_CHANNEL_LIGHTNING_PAY", "ORDER_CHANNEL_PHOTO_POINTS",
            "ORDER_CHANNEL_POS", "ORDER_CHANNEL_ONLINE")
COLUMNS = ("occur_time", "mall", "store", "brand", "channel", "order_no", "amount", "paid", "points", "refunded")


def day_start(text: str, field: str) -> str:
    """A ``YYYY-MM-DD`` typed in the console as the RFC 3339 start of that day in Beijing time."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(field) from None
    return datetime.combine(day, time.min, DISPLAY_ZONE).isoformat()


def orders_request(member_id: str, state: dict[str, Any], page_size: int, page_token: str) -> dict[str, Any]:
    """The ListMemberOrders request for the filters chosen (the end date is included: orders before the next day)."""
    request: dict[str, Any] = {"member_id": member_id, "page_size": page_size, "page_token": page_token,
                               "mall_id": state.get("mall_id") or "", "store_id": state.get("store_id") or "",
                               "brand": state.get("brand") or "", "channels": list(state.get("channels") or [])}
    if state.get("from_date"):
        request["start_time"] = day_start(state["from_date"], "start_time")
    if state.get("to_date"):
        end = date.fromisoformat(day_start(state["to_date"], "end_time")[:10]) + timedelta(days=1)
        request["end_time"] = datetime.combine(end, time.min, DISPLAY_ZONE).isoformat()
    return request


def order_row(t: Labels, order: dict[str, Any], choices: Choices) -> dict[str, Any]:
    refunded = int(order.get("refunded_amount") or 0)
    return {
        "order_id": order["order_id"],
        "occur_time": when(order.get("occur_time")),
        "mall": choices.malls.get(order.get("mall_id", ""), order.get("mall_id") or "—"),
        "store": order.get("store_name") or choices.stores.get(order.get("store_id", ""), "—"),
        "brand": order.get("brand") or "—",
        "channel": t.enum("order_channel", order.get("channel")),
        "order_no": order.get("external_order_no") or "—",
        "amount": yuan(order.get("amount")),
        "paid": yuan(order.get("paid_amount")),
        "points": points(order.get("points_earned")),
        "refunded": yuan(refunded) if refunded else "—",
    }


class MemberOrders:
    """The order list with its filter row and pager; ``await build()`` inside the consumption tab."""

    def __init__(self, t: Labels, api: Api, member_id: str, choices: Choices) -> None:
        self.t, self.api, self.member_id, self.choices = t, api, member_id, choices
        self.state: dict[str, Any] = {"mall_id": "", "store_id": "", "brand": "", "channels": [],
                                      "from_date": "", "to_date": ""}
        self.pager = Pager()
        self.page_size = 20
        self.form = Form(t)

    async def build(self) -> None:
        t, c = self.t, self.choices
        ui.label(t("orders.title")).classes("text-subtitle1 font-medium mt-4")
        with ui.row().classes("w-full items-end gap-3"):
            self.form.add("mall_id", ui.select({"": t("orders.any"), **c.malls}, value="", label=t("orders.mall"),
                                               on_change=lambda e: self.apply("mall_id", e.value)).classes("w-40"))
            self.form.add("store_id", ui.select({"": t("orders.any"), **c.stores}, value="", label=t("orders.store"),
                                                on_change=lambda e: self.apply("store_id", e.value)).classes("w-40"))
            self.form.add("brand", ui.select({"": t("orders.any"), **{b: b for b in c.brands}}, value="",
                                             label=t("orders.brand"),
                                             on_change=lambda e: self.apply("brand", e.value)).classes("w-36"))
            self.form.add("channels", ui.select({ch: t.enum("order_channel", ch) for ch in CHANNELS}, multiple=True,
                                                value=[], label=t("orders.channel"),
                                                on_change=lambda e: self.apply("channels", e.value)
                                                ).classes("w-48").props("use-chips"))
            self.form.add("start_time", ui.input(t("orders.from_date"), placeholder="2026-01-01",
                                                 on_change=lambda e: self.apply("from_date", e.value)
                                                 ).classes("w-32").props("debounce=500 clearable"))
            self.form.add("end_time", ui.input(t("orders.to_date"), placeholder="2026-12-31",
                                               on_change=lambda e: self.apply("to_date", e.value)
                                               ).classes("w-32").props("debounce=500 clearable"))
        self.form.error_banner()
        columns = [{"name": k, "label": t(f"orders.col.{k}"), "field": k, "align": "left"} for k in COLUMNS]
        self.table = ui.table(columns=columns, rows=[], row_key="order_id").classes("w-full").props(
            table_labels(t) + " hide-pagination").props(f'aria-label="{t("orders.title")}"')
        self.table.pagination = {"rowsPerPage": 0}
        with ui.row().classes("w-full items-center justify-end gap-3"):
            self.previous = ui.button(t("table.previous"), on_click=lambda: self.turn(back=True)).props("flat")
            self.page_no = ui.label("")
            self.following = ui.button(t("table.next"), on_click=lambda: self.turn(back=False)).props("flat")
        await self.reload(reset=True)

    async def apply(self, key: str, value: Any) -> None:
        self.state[key] = value or ([] if key == "channels" else "")
        await self.reload(reset=True)

    async def turn(self, back: bool) -> None:
        if self.pager.back() if back else self.pager.forward():
            await self.reload()

    async def reload(self, reset: bool = False) -> None:
        if reset:
            self.pager.reset()
        self.form.clear()
        try:
            request = orders_request(self.member_id, self.state, self.page_size, self.pager.token)
        except ValueError as err:
            self.form.show(ApiError(400, "INVALID_ARGUMENT", self.t("orders.bad_date"), str(err)))
            return
        self.table.props("loading")
        answer = await self.form.submit(lambda: self.api.call("LedgerService.ListMemberOrders", request))
        self.table.props(remove="loading")
        if answer is None:
            return
        self.pager.got(answer.get("next_page_token", ""))
        self.table.rows = [order_row(self.t, o, self.choices) for o in answer.get("orders", [])]
        self.table.update()
        self.page_no.set_text(self.t("table.page", n=self.pager.index + 1))
        self.previous.enabled = self.pager.index > 0
        self.following.enabled = bool(self.pager.next_token)
