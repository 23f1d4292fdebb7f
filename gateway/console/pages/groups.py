"""Customer groups (document 000): add, rename, delete, and move chosen customers between groups in batches."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.pages.members import member_row, members_columns
from gateway.console.widgets import Form, Pager, attempt, dialog_actions, table_labels

MOVE_LIMIT = 1000


@ui.page("/groups", response_timeout=PAGE_TIMEOUT_S)
async def groups_page(request: Request, group: str = "default") -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    with frame(page, "groups.title"):
        await GroupsView(page, group).build()
    return None


class GroupsView:
    def __init__(self, page: Page, group_id: str) -> None:
        self.page, self.t, self.api, self.group_id = page, page.t, page.api, group_id
        self.groups: list[dict[str, Any]] = []
        self.pager = Pager()

    async def build(self) -> None:
        t = self.t
        ui.label(t("groups.hint")).classes("text-sm text-grey-8")
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.card().classes("w-64 shrink-0").props(f'aria-label="{t("groups.title")}"'):
                ui.button(t("groups.add"), icon="add", on_click=lambda: self.group_dialog(None)).props("flat dense")
                self.group_list()
            with ui.column().classes("grow min-w-0"):
                with ui.row().classes("items-center gap-3"):
                    self.heading = ui.label("").classes("font-medium")
                    ui.button(t("groups.move"), on_click=self.move_dialog).props("outline")
                self.table = ui.table(columns=members_columns(t), rows=[], row_key="member_id",
                                      selection="multiple").classes("w-full").props(
                    table_labels(t) + " hide-pagination").props(f'aria-label="{t("groups.members")}"')
                self.table.pagination = {"rowsPerPage": 0}
                with ui.row().classes("w-full justify-end"):
                    self.previous = ui.button(t("table.previous"), on_click=lambda: self.turn(True)).props("flat")
                    self.following = ui.button(t("table.next"), on_click=lambda: self.turn(False)).props("flat")
        await self.load()

    async def load(self) -> None:
        answer = await attempt(lambda: self.api.call("ClassificationService.ListCustomerGroups", {"page_size": 1000}))
        self.groups = (answer or {}).get("groups", [])
        self.group_list.refresh()
        await self.load_members()

    @ui.refreshable_method
    def group_list(self) -> None:
        t = self.t
        with ui.list().props("dense separator").classes("w-full"):
            for group in self.groups:
                gid = group["group_id"]
                with ui.item(on_click=lambda gid=gid: self.pick(gid)).props(
                        "clickable" + (" active" if gid == self.group_id else "")):
                    with ui.item_section():
                        ui.item_label(group.get("name") or t("group.default"))
                        ui.item_label(t("groups.count", n=int(group.get("customer_count") or 0))).props("caption")
                    if not group.get("is_default"):
                        with ui.item_section().props("side"), ui.row().classes("gap-0 no-wrap"):
                            ui.button(icon="edit", on_click=lambda g=group: self.group_dialog(g)).props(
                                f'flat dense round size=sm aria-label="{t("groups.rename")}"')
                            ui.button(icon="delete", on_click=lambda g=group: self.delete(g)).props(
                                f'flat dense round size=sm color=negative aria-label="{t("groups.delete")}"')

    async def pick(self, group_id: str) -> None:
        self.group_id = group_id
        self.pager.reset()
        self.group_list.refresh()
        await self.load_members()

    async def load_members(self) -> None:
        t = self.t
        name = next((g.get("name") for g in self.groups if g["group_id"] == self.group_id), "") or t("group.default")
        self.heading.set_text(t("groups.members_of", name=name))
        answer = await attempt(lambda: self.api.call("MemberService.ListMembers", {
            "page_size": 50, "page_token": self.pager.token, "filter": {"group_ids": [self.group_id]}}))
        if answer is None:
            return
        self.pager.got(answer.get("next_page_token", ""))
        self.table.rows = [member_row(t, m, {}) for m in answer.get("members", [])]
        self.table.selected = []
        self.table.update()
        self.previous.enabled, self.following.enabled = self.pager.index > 0, bool(self.pager.next_token)

    async def turn(self, back: bool) -> None:
        if self.pager.back() if back else self.pager.forward():
            await self.load_members()

    def group_dialog(self, group: dict[str, Any] | None) -> None:
        t = self.t
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("groups.rename") if group else t("groups.add")).classes("text-lg")
            name = form.add("name", ui.input(t("groups.name"), value=(group or {}).get("name", "")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                if group:
                    request = {"request_id": uuid.uuid4().hex, "group_id": group["group_id"], "name": name.value}
                    rpc = "ClassificationService.RenameCustomerGroup"
                else:
                    request = {"request_id": uuid.uuid4().hex, "name": name.value}
                    rpc = "ClassificationService.CreateCustomerGroup"
                if await form.submit(lambda: self.api.call(rpc, request)) is not None:
                    dialog.close()
                    await self.load()

            dialog_actions(t, dialog, save)
        dialog.open()

    async def delete(self, group: dict[str, Any]) -> None:
        answer = await attempt(lambda: self.api.call("ClassificationService.DeleteCustomerGroup", {
            "request_id": uuid.uuid4().hex, "group_id": group["group_id"]}))
        if answer is not None:
            ui.notify(self.t("groups.deleted", n=int(answer.get("moved_count") or 0)), type="positive")
            if self.group_id == group["group_id"]:
                self.group_id = "default"
            await self.load()

    def move_dialog(self) -> None:
        t = self.t
        chosen = [row["member_id"] for row in self.table.selected][:MOVE_LIMIT]
        if not chosen:
            ui.notify(t("groups.choose_first"), type="warning")
            return
        form = Form(t)
        options = {g["group_id"]: g.get("name") or t("group.default") for g in self.groups}
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("groups.move_n", n=len(chosen))).classes("text-lg")
            target = form.add("group_id", ui.select(options, label=t("groups.target")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                if await form.submit(lambda: self.api.call("ClassificationService.MoveCustomersToGroup", {
                        "request_id": uuid.uuid4().hex, "customer_ids": chosen,
                        "group_id": target.value or ""})) is not None:
                    dialog.close()
                    await self.load()

            dialog_actions(t, dialog, save)
        dialog.open()
