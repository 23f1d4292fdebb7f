"""Virtual customers (document 000): display-only customers for reviews and group-buys; never counted."""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.layout import PAGE_TIMEOUT_S, frame, open_page
from gateway.console.widgets import Form, attempt, table_labels, when


@ui.page("/virtual-customers", response_timeout=PAGE_TIMEOUT_S)
async def virtual_customers_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "virtual.title"):
        ui.label(t("virtual.hint")).classes("text-sm text-grey-8")
        form = Form(t)
        with ui.card().classes("w-full max-w-3xl"):
            with ui.row().classes("items-start gap-3"):
                name = form.add("name", ui.input(t("virtual.name")).classes("w-48"))
                phone = form.add("phone", ui.input(t("member.phone")).classes("w-48"))
                avatar = form.add("avatar_url", ui.input(t("virtual.avatar")).classes("w-64"))
                add_button = ui.button(t("virtual.add"), icon="add")
            form.error_banner()

        @ui.refreshable
        async def table() -> None:
            answer = await attempt(lambda: page.api.call("MemberService.ListMembers", {
                "page_size": 1000, "filter": {"include_virtual": True}}))
            rows = [{"member_id": m["member_id"], "name": m.get("name", ""), "phone": m.get("phone", ""),
                     "created": when(m.get("create_time"))}
                    for m in (answer or {}).get("members", []) if m.get("virtual")]
            columns = [{"name": k, "label": t(f"virtual.col.{k}"), "field": k, "align": "left"}
                       for k in ("name", "phone", "created")]
            ui.table(columns=columns, rows=rows, row_key="member_id").classes("w-full max-w-3xl").props(
                table_labels(t)).props(f'aria-label="{t("virtual.title")}"')

        async def add() -> None:
            if await form.submit(lambda: page.api.call("MemberService.CreateMember", {
                    "request_id": uuid.uuid4().hex, "name": name.value or "", "phone": phone.value or "",
                    "avatar_url": avatar.value or "", "virtual": True})) is not None:
                for element in (name, phone, avatar):
                    element.set_value("")
                table.refresh()

        add_button.on_click(add)
        await table()
    return None
