"""Crowd package builder with a live size, and a package's members with their download (document 001)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.crowd_editor import Choices, CrowdEditor, load_choices
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.pages.members import member_row
from gateway.console.widgets import Form, Pager, attempt, download_csv, table_labels, when


@ui.page("/crowds/new", response_timeout=PAGE_TIMEOUT_S)
async def new_package_page(request: Request, mall: str = "") -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    with frame(page, "builder.new_title"):
        await Builder(page, mall_id=mall).build()
    return None


@ui.page("/crowds/{package_id}/edit", response_timeout=PAGE_TIMEOUT_S)
async def edit_package_page(request: Request, package_id: str) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    with frame(page, "builder.edit_title"):
        answer = await attempt(lambda: page.api.call("CrowdService.GetPackage", {"package_id": package_id}))
        if answer is not None:
            package = answer.get("package", answer)
            await Builder(page, mall_id=package.get("mall_id", ""), package=package).build()
    return None


class Builder:
    def __init__(self, page: Page, mall_id: str, package: dict[str, Any] | None = None) -> None:
        self.page, self.t, self.api = page, page.t, page.api
        self.mall_id, self.package = mall_id, package
        self.sequence = 0

    async def build(self) -> None:
        t = self.t
        choices = await attempt(lambda: load_choices(self.api)) or Choices()
        if self.mall_id not in choices.malls:
            self.mall_id = next(iter(choices.malls), "")
        categories = await attempt(lambda: self.api.call("CrowdService.ListCategories", {"mall_id": self.mall_id}))
        category_options = {c["category_id"]: t("crowds.uncategorised") if c.get("is_default") else c.get("name", "")
                            for c in (categories or {}).get("categories", [])}
        package = self.package or {}
        form = Form(t)
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.column().classes("grow min-w-0 gap-3"):
                with ui.card().classes("w-full"):
                    with ui.row().classes("w-full gap-4 items-end"):
                        name = form.add("name", ui.input(t("builder.name"), value=package.get("name", ""))
                                        .classes("w-64"))
                        category = form.add("category_id", ui.select(
                            category_options, label=t("builder.category"),
                            value=package.get("category_id") or None, clearable=True).classes("w-48"))
                        ui.label(t("builder.mall", mall=choices.malls.get(self.mall_id, self.mall_id))).classes(
                            "text-sm text-grey-8")
                    remark = form.add("remark", ui.textarea(t("builder.remark"), value=package.get("remark", ""))
                                      .classes("w-full").props("autogrow"))
                form.add("definition", ui.label("").classes("hidden"))
                self.editor = CrowdEditor(t, choices, self.changed, multi_group=True)
                if package.get("definition"):
                    self.editor.load(package["definition"])
                form.error_banner()
                with ui.row().classes("gap-2"):
                    ui.button(t("builder.save"), on_click=lambda: self.save(form, name, category, remark))
                    ui.button(t("common.cancel"), on_click=lambda: ui.navigate.to(f"/crowds?mall={self.mall_id}")
                              ).props("flat")
            with ui.card().classes("w-56 shrink-0 sticky top-20").props(f'aria-label="{t("builder.live_size")}"'):
                ui.label(t("builder.live_size")).classes("text-sm text-grey-8")
                self.size = ui.label("—").classes("text-3xl font-medium").props('data-testid="live-size"')
                self.size_note = ui.label(t("builder.live_note")).classes("text-xs text-grey-7")
                self.spinner = ui.spinner(size="sm")
                self.spinner.visible = False
        await self.changed()

    async def changed(self) -> None:
        """Asks for the size of the definition as it stands; a later answer wins over an earlier one."""
        self.sequence += 1
        mine = self.sequence
        definition = self.editor.definition()
        if not definition["groups"]:
            self.size.set_text("—")
            return
        self.spinner.visible = True
        try:
            answer = await self.api.call("CrowdService.PreviewPackage", {"mall_id": self.mall_id,
                                                                         "definition": definition})
        except ApiError as err:  # an API error about the definition shows as the live size's note
            if mine == self.sequence:
                self.size.set_text("—")
                self.size_note.set_text(getattr(err, "message", str(err)))
                self.spinner.visible = False
            return
        if mine == self.sequence:
            self.size.set_text(f"{int(answer.get('member_count') or 0):,}")
            self.size_note.set_text(self.t("builder.live_note"))
            self.spinner.visible = False

    async def save(self, form: Form, name: Any, category: Any, remark: Any) -> None:
        definition = self.editor.definition()
        if self.package:
            request = {"request_id": uuid.uuid4().hex, "package": {
                "package_id": self.package["package_id"], "name": name.value or "", "remark": remark.value or "",
                "category_id": category.value or "", "definition": definition},
                "update_mask": "name,remark,categoryId,definition"}
            rpc = "CrowdService.UpdatePackage"
        else:
            request = {"request_id": uuid.uuid4().hex, "mall_id": self.mall_id, "name": name.value or "",
                       "remark": remark.value or "", "category_id": category.value or "", "definition": definition}
            rpc = "CrowdService.CreatePackage"
        if await form.submit(lambda: self.api.call(rpc, request)) is not None:
            ui.navigate.to(f"/crowds?mall={self.mall_id}")


@ui.page("/crowds/{package_id}", response_timeout=PAGE_TIMEOUT_S)
async def package_members_page(request: Request, package_id: str) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    answer = await attempt(lambda: page.api.call("CrowdService.GetPackage", {"package_id": package_id}))
    package = (answer or {}).get("package", answer or {})
    with frame(page, "package.title", name=package.get("name", "")):
        if not package:
            return None
        choices = await attempt(lambda: load_choices(page.api)) or Choices()
        with ui.row().classes("w-full items-center gap-6"):
            ui.label(t.enum("package_status", package.get("status")))
            ui.label(t("package.count", n=f"{int(package.get('member_count') or 0):,}")).props(
                'data-testid="package-count"')
            ui.label(t("package.computed", at=when(package.get("compute_time"))))
            ui.space()

            async def download() -> None:
                notice = ui.notification(t("common.downloading"), spinner=True, timeout=None)
                exported = await attempt(lambda: page.api.call("CrowdService.ExportPackageMembers",
                                                               {"package_id": package_id}))
                notice.dismiss()
                if exported is not None:
                    rows = download_csv(exported, f"crowd-{package_id}.csv")
                    ui.notify(t("members.downloaded", n=rows), type="positive")

            ui.button(t("package.download"), icon="download", on_click=download).props("outline")
        if package.get("remark"):
            ui.label(package["remark"]).classes("text-sm text-grey-8")
        pager = Pager()
        from gateway.console.pages.members import members_columns

        table = ui.table(columns=members_columns(t), rows=[], row_key="member_id").classes("w-full").props(
            table_labels(t) + " hide-pagination").props(f'aria-label="{t("package.members")}"')
        table.pagination = {"rowsPerPage": 0}
        table.on("rowClick", lambda e: ui.navigate.to(f"/members/{e.args[1]['member_id']}"))
        with ui.row().classes("w-full justify-end items-center"):
            previous = ui.button(t("table.previous"), on_click=lambda: turn(True)).props("flat")
            following = ui.button(t("table.next"), on_click=lambda: turn(False)).props("flat")

        async def load() -> None:
            got = await attempt(lambda: page.api.call("CrowdService.ListPackageMembers", {
                "package_id": package_id, "page_size": 20, "page_token": pager.token}))
            if got is None:
                return
            pager.got(got.get("next_page_token", ""))
            table.rows = [member_row(t, m, choices.levels) for m in got.get("members", [])]
            table.update()
            previous.enabled, following.enabled = pager.index > 0, bool(pager.next_token)

        async def turn(back: bool) -> None:
            if pager.back() if back else pager.forward():
                await load()

        await load()
    return None
