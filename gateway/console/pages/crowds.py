"""Crowd packages (document 001): categories with ordering, the package list with each status."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import Form, attempt, dialog_actions, table_labels, when

STATUS_COLOURS = {"PACKAGE_STATUS_UPDATING": "orange", "PACKAGE_STATUS_READY": "positive",
                  "PACKAGE_STATUS_FAILED": "negative"}


async def malls_of(page: Page) -> dict[str, str]:
    answer = await attempt(lambda: page.api.call("OrganizationService.ListMalls", {"page_size": 1000})) or {}
    return {m["mall_id"]: m.get("name", m["mall_id"]) for m in answer.get("malls", [])}


@ui.page("/crowds", response_timeout=PAGE_TIMEOUT_S)
async def crowds_page(request: Request, mall: str = "") -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "crowds.title"):
        malls = await malls_of(page)
        mall_id = mall if mall in malls else next(iter(malls), "")
        with ui.row().classes("w-full items-end gap-4"):
            ui.select(malls, value=mall_id or None, label=t("crowds.mall"),
                      on_change=lambda e: ui.navigate.to(f"/crowds?mall={e.value}")).classes("w-56")
            ui.space()
            ui.button(t("crowds.new"), icon="add",
                      on_click=lambda: ui.navigate.to(f"/crowds/new?mall={mall_id}")).props(
                "" if mall_id else "disable")
        if not mall_id:
            ui.label(t("crowds.no_mall"))
            return None
        view = CrowdList(page, mall_id)
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.card().classes("w-72 shrink-0").props(f'aria-label="{t("crowds.categories")}"'):
                view.categories_panel()
            with ui.column().classes("grow min-w-0"):
                view.packages_panel()
        await view.load()
    return None


class CrowdList:
    def __init__(self, page: Page, mall_id: str) -> None:
        self.page, self.t, self.api, self.mall_id = page, page.t, page.api, mall_id
        self.categories: list[dict[str, Any]] = []
        self.category_id = ""

    async def load(self) -> None:
        answer = await attempt(lambda: self.api.call("CrowdService.ListCategories", {"mall_id": self.mall_id}))
        self.categories = (answer or {}).get("categories", [])
        self.category_list.refresh()
        await self.load_packages()

    @ui.refreshable_method
    def category_list(self) -> None:
        t = self.t
        with ui.list().props("dense separator").classes("w-full"):
            everything = "clickable" + (" active" if not self.category_id else "")
            with ui.item(on_click=lambda: self.pick("")).props(everything):
                with ui.item_section():
                    ui.item_label(t("crowds.all_categories"))
            for index, category in enumerate(self.categories):
                cid = category["category_id"]
                with ui.item(on_click=lambda cid=cid: self.pick(cid)).props(
                        "clickable" + (" active" if cid == self.category_id else "")):
                    with ui.item_section():
                        ui.item_label(t("crowds.uncategorised") if category.get("is_default")
                                      else category.get("name", ""))
                        ui.item_label(t("crowds.package_count", n=int(category.get("package_count") or 0))).props(
                            "caption")
                    with ui.item_section().props("side"), ui.row().classes("gap-0 no-wrap"):
                        ui.button(icon="arrow_upward", on_click=lambda i=index: self.move(i, -1)).props(
                            f'flat dense round size=sm aria-label="{t("crowds.move_up")}"' +
                            (" disable" if index == 0 else ""))
                        ui.button(icon="arrow_downward", on_click=lambda i=index: self.move(i, 1)).props(
                            f'flat dense round size=sm aria-label="{t("crowds.move_down")}"' +
                            (" disable" if index == len(self.categories) - 1 else ""))
                        if not category.get("is_default"):
                            ui.button(icon="edit", on_click=lambda c=category: self.category_dialog(c)).props(
                                f'flat dense round size=sm aria-label="{t("crowds.rename")}"')
                            ui.button(icon="delete", on_click=lambda c=category: self.delete_category(c)).props(
                                f'flat dense round size=sm color=negative aria-label="{t("crowds.delete")}"')

    def categories_panel(self) -> None:
        t = self.t
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(t("crowds.categories")).classes("font-medium")
            ui.button(t("crowds.new_category"), on_click=lambda: self.category_dialog(None)).props("flat dense")
        self.category_list()

    async def pick(self, category_id: str) -> None:
        self.category_id = category_id
        self.category_list.refresh()
        await self.load_packages()

    async def move(self, index: int, step: int) -> None:
        order = [c["category_id"] for c in self.categories]
        order[index], order[index + step] = order[index + step], order[index]
        answer = await attempt(lambda: self.api.call("CrowdService.ReorderCategories", {
            "request_id": uuid.uuid4().hex, "mall_id": self.mall_id, "category_ids": order}))
        if answer is not None:
            await self.load()

    async def category_dialog(self, category: dict[str, Any] | None) -> None:
        t = self.t
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("crowds.rename") if category else t("crowds.new_category")).classes("text-lg")
            name = form.add("name", ui.input(t("crowds.category_name"), value=(category or {}).get("name", ""))
                            .classes("w-full"))
            form.error_banner()

            async def save() -> None:
                if category:
                    call = self.api.call("CrowdService.RenameCategory", {
                        "request_id": uuid.uuid4().hex, "category_id": category["category_id"], "name": name.value})
                else:
                    call = self.api.call("CrowdService.CreateCategory", {
                        "request_id": uuid.uuid4().hex, "mall_id": self.mall_id, "name": name.value})
                if await form.submit(lambda: call) is not None:
                    dialog.close()
                    await self.load()

            dialog_actions(t, dialog, save)
        dialog.open()

    async def delete_category(self, category: dict[str, Any]) -> None:
        if await attempt(lambda: self.api.call("CrowdService.DeleteCategory", {
                "request_id": uuid.uuid4().hex, "category_id": category["category_id"]})) is not None:
            if self.category_id == category["category_id"]:
                self.category_id = ""
            await self.load()

    def packages_panel(self) -> None:
        t = self.t
        columns = [
            {"name": "name", "label": t("crowds.col.name"), "field": "name", "align": "left"},
            {"name": "category", "label": t("crowds.col.category"), "field": "category", "align": "left"},
            {"name": "status", "label": t("crowds.col.status"), "field": "status", "align": "left"},
            {"name": "count", "label": t("crowds.col.count"), "field": "count"},
            {"name": "computed", "label": t("crowds.col.computed"), "field": "computed"},
            {"name": "actions", "label": t("crowds.col.actions"), "field": "package_id", "align": "left"},
        ]
        self.table = ui.table(columns=columns, rows=[], row_key="package_id").classes("w-full").props(
            table_labels(t)).props(f'aria-label="{t("crowds.packages")}"')
        self.table.add_slot("body-cell-status", '''
            <q-td :props="props">
              <q-badge :color="props.row.colour" :label="props.row.status" />
              <div v-if="props.row.reason" class="text-negative text-xs">{{ props.row.reason }}</div>
            </q-td>''')
        self.table.add_slot("body-cell-actions", f'''
            <q-td :props="props">
              <template v-if="props.row.ready">
                <q-btn flat dense no-caps color="primary" label="{t('crowds.details')}"
                       @click="() => $parent.$emit('open', props.row)" />
                <q-btn flat dense no-caps color="primary" label="{t('crowds.edit')}"
                       @click="() => $parent.$emit('edit', props.row)" />
                <q-btn flat dense no-caps color="primary" label="{t('crowds.refresh')}"
                       @click="() => $parent.$emit('refresh', props.row)" />
              </template>
            </q-td>''')
        self.table.on("open", lambda e: ui.navigate.to(f"/crowds/{e.args['package_id']}"))
        self.table.on("edit", lambda e: ui.navigate.to(f"/crowds/{e.args['package_id']}/edit"))
        self.table.on("refresh", lambda e: self.refresh_package(e.args["package_id"]))
        self.updating_timer = ui.timer(2.0, self.load_packages, active=False)

    async def load_packages(self) -> None:
        t = self.t
        request = {"mall_id": self.mall_id, "category_id": self.category_id, "page_size": 1000}
        answer = await attempt(lambda: self.api.call("CrowdService.ListPackages", request))
        names = {c["category_id"]: self.t("crowds.uncategorised") if c.get("is_default") else c.get("name", "")
                 for c in self.categories}
        packages = (answer or {}).get("packages", [])
        self.table.rows = [{
            "package_id": p["package_id"], "name": p.get("name", ""), "category": names.get(p.get("category_id"), ""),
            "status": t.enum("package_status", p.get("status")), "colour": STATUS_COLOURS.get(p.get("status"), "grey"),
            "reason": p.get("failure_reason", ""), "ready": p.get("status") != "PACKAGE_STATUS_UPDATING",
            "count": f"{int(p.get('member_count') or 0):,}", "computed": when(p.get("compute_time")),
        } for p in packages]
        self.table.update()
        self.updating_timer.active = any(p.get("status") == "PACKAGE_STATUS_UPDATING" for p in packages)

    async def refresh_package(self, package_id: str) -> None:
        if await attempt(lambda: self.api.call("CrowdService.RefreshPackage", {
                "request_id": uuid.uuid4().hex, "package_id": package_id})) is not None:
            await self.load_packages()
