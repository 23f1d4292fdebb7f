"""Organisation: malls, stores, staff (with their sign-in password) and the adjustment reason templates."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.crowd_editor import Choices, load_choices
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import Form, attempt, dialog_actions, table_labels, when

ROLES = ("STAFF_ROLE_SUPER_ADMIN", "STAFF_ROLE_MALL_ADMIN", "STAFF_ROLE_SALES", "STAFF_ROLE_STORE_STAFF")
ASSETS = ("ASSET_UNSPECIFIED", "ASSET_POINTS", "ASSET_RED_PACKET", "ASSET_BALANCE")


@ui.page("/organisation", response_timeout=PAGE_TIMEOUT_S)
async def organisation_page(request: Request, tab: str = "malls") -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "org.title"):
        choices = await attempt(lambda: load_choices(page.api)) or Choices()
        view = Organisation(page, choices)
        with ui.tabs().props("align=left") as tabs:
            for name in ("malls", "stores", "staff", "reasons"):
                ui.tab(name, t(f"org.tab.{name}"))
        with ui.tab_panels(tabs, value=tab if tab in ("malls", "stores", "staff", "reasons") else "malls").classes(
                "w-full bg-transparent"):
            for name, build in (("malls", view.malls), ("stores", view.stores), ("staff", view.staff),
                                ("reasons", view.reasons)):
                with ui.tab_panel(name).classes("p-0"):
                    await build()
    return None


def create_dialog(page: Page, title: str, fields: Callable[[Form], dict[str, Any]], rpc: str,
                  done: Callable[[], Any], extra: dict[str, Any] | None = None) -> None:
    """A dialog whose inputs fill one create request; API errors show beside their fields."""
    t = page.t
    form = Form(t)
    with ui.dialog() as dialog, ui.card().classes("w-[28rem] max-w-full"):
        ui.label(title).classes("text-lg font-medium")
        inputs = fields(form)
        form.error_banner()

        async def save() -> None:
            request = {"request_id": uuid.uuid4().hex, **(extra or {}),
                       **{k: (v.value if v.value is not None else "") for k, v in inputs.items()}}
            if await form.submit(lambda: page.api.call(rpc, request)) is not None:
                dialog.close()
                result = done()
                if result is not None:
                    await result

        dialog_actions(t, dialog, save)
    dialog.open()


class Organisation:
    def __init__(self, page: Page, choices: Choices) -> None:
        self.page, self.t, self.api, self.choices = page, page.t, page.api, choices

    def table(self, name: str, keys: tuple[str, ...], key: str) -> ui.table:
        t = self.t
        columns = [{"name": k, "label": t(f"org.{name}.{k}"), "field": k, "align": "left"} for k in keys]
        return ui.table(columns=columns, rows=[], row_key=key).classes("w-full").props(table_labels(t)).props(
            f'aria-label="{t(f"org.tab.{name}")}"')

    async def malls(self) -> None:
        t = self.t
        ui.button(t("org.malls.add"), icon="add", on_click=lambda: create_dialog(
            self.page, t("org.malls.add"), lambda f: {
                "name": f.add("name", ui.input(t("org.malls.name")).classes("w-full")),
                "timezone": f.add("timezone", ui.input(t("org.malls.timezone"), value="Asia/Shanghai")
                                  .classes("w-full"))},
            "OrganizationService.CreateMall", load))
        table = self.table("malls", ("name", "timezone", "created"), "mall_id")

        async def load() -> None:
            answer = await attempt(lambda: self.api.call("OrganizationService.ListMalls", {"page_size": 1000}))
            table.rows = [{"mall_id": m["mall_id"], "name": m.get("name", ""), "timezone": m.get("timezone", ""),
                           "created": when(m.get("create_time"))} for m in (answer or {}).get("malls", [])]
            table.update()
        await load()

    async def stores(self) -> None:
        t, c = self.t, self.choices
        ui.button(t("org.stores.add"), icon="add", on_click=lambda: create_dialog(
            self.page, t("org.stores.add"), lambda f: {
                "mall_id": f.add("mall_id", ui.select(c.malls, label=t("org.stores.mall"),
                                                      value=next(iter(c.malls), None)).classes("w-full")),
                "name": f.add("name", ui.input(t("org.stores.name")).classes("w-full")),
                "category": f.add("category", ui.input(t("org.stores.category")).classes("w-full")),
                "business_format": f.add("business_format", ui.input(t("org.stores.business_format"))
                                         .classes("w-full")),
                "floor": f.add("floor", ui.input(t("org.stores.floor")).classes("w-full"))},
            "OrganizationService.CreateStore", load))
        table = self.table("stores", ("name", "mall", "category", "business_format", "floor"), "store_id")

        async def load() -> None:
            answer = await attempt(lambda: self.api.call("OrganizationService.ListStores", {"page_size": 1000}))
            table.rows = [{"store_id": s["store_id"], "name": s.get("name", ""),
                           "mall": c.malls.get(s.get("mall_id", ""), s.get("mall_id", "")),
                           "category": s.get("category", ""), "business_format": s.get("business_format", ""),
                           "floor": s.get("floor", "")} for s in (answer or {}).get("stores", [])]
            table.update()
        await load()

    async def staff(self) -> None:
        t, c = self.t, self.choices
        ui.button(t("org.staff.add"), icon="add", on_click=lambda: create_dialog(
            self.page, t("org.staff.add"), lambda f: {
                "name": f.add("name", ui.input(t("org.staff.name")).classes("w-full")),
                "phone": f.add("phone", ui.input(t("org.staff.phone")).classes("w-full")),
                "role": f.add("role", ui.select({r: t.enum("role", r) for r in ROLES}, label=t("org.staff.role"),
                                                value=ROLES[1]).classes("w-full")),
                "mall_ids": f.add("mall_ids", ui.select(c.malls, multiple=True, value=[], label=t("org.staff.malls"))
                                  .classes("w-full").props("use-chips")),
                "store_id": f.add("store_id", ui.select(c.stores, label=t("org.staff.store"), clearable=True)
                                  .classes("w-full"))},
            "OrganizationService.CreateStaff", load))
        table = self.table("staff", ("name", "phone", "role", "malls", "status"), "staff_id")
        table.columns.append({"name": "actions", "label": t("crowds.col.actions"), "field": "staff_id",
                              "align": "left"})
        table.add_slot("body-cell-actions", f'''
            <q-td :props="props">
              <q-btn flat dense no-caps color="primary" label="{t('org.staff.set_password')}"
                     @click="() => $parent.$emit('password', props.row)" />
            </q-td>''')
        table.on("password", lambda e: self.password_dialog(e.args["staff_id"], e.args["name"]))

        async def load() -> None:
            answer = await attempt(lambda: self.api.call("OrganizationService.ListStaff", {"page_size": 1000}))
            table.rows = [{"staff_id": s["staff_id"], "name": s.get("name", ""), "phone": s.get("phone", ""),
                           "role": t.enum("role", s.get("role")),
                           "malls": "、".join(c.malls.get(m, m) for m in s.get("mall_ids", [])) or "—",
                           "status": t("member.disabled") if s.get("disabled") else t("member.enabled")}
                          for s in (answer or {}).get("staff", [])]
            table.update()
        await load()

    def password_dialog(self, staff_id: str, name: str) -> None:
        t = self.t
        create_dialog(self.page, t("org.staff.password_for", name=name), lambda f: {
            "new_password": f.add("new_password", ui.input(t("org.staff.new_password"), password=True)
                                  .classes("w-full"))},
            "SessionService.SetStaffPassword", lambda: ui.notify(t("common.saved"), type="positive"),
            extra={"staff_id": staff_id})

    async def reasons(self) -> None:
        t = self.t
        ui.button(t("org.reasons.add"), icon="add", on_click=lambda: create_dialog(
            self.page, t("org.reasons.add"), lambda f: {
                "asset": f.add("asset", ui.select({a: t.enum("asset", a, t("org.reasons.any")) for a in ASSETS},
                                                  value="ASSET_POINTS", label=t("org.reasons.asset"))
                               .classes("w-full")),
                "name": f.add("name", ui.input(t("org.reasons.name")).classes("w-full"))},
            "LedgerService.CreateReasonTemplate", load))
        table = self.table("reasons", ("name", "asset", "operator", "created"), "reason_template_id")
        table.columns.append({"name": "actions", "label": t("crowds.col.actions"), "field": "reason_template_id",
                              "align": "left"})
        table.add_slot("body-cell-actions", f'''
            <q-td :props="props">
              <q-btn flat dense no-caps color="negative" label="{t('common.delete')}"
                     @click="() => $parent.$emit('delete', props.row)" />
            </q-td>''')

        async def delete(template_id: str) -> None:
            if await attempt(lambda: self.api.call("LedgerService.DeleteReasonTemplate", {
                    "request_id": uuid.uuid4().hex, "reason_template_id": template_id})) is not None:
                await load()

        table.on("delete", lambda e: delete(e.args["reason_template_id"]))

        async def load() -> None:
            answer = await attempt(lambda: self.api.call("LedgerService.ListReasonTemplates", {"page_size": 1000}))
            table.rows = [{"reason_template_id": r["reason_template_id"], "name": r.get("name", ""),
                           "asset": t.enum("asset", r.get("asset"), t("org.reasons.any")),
                           "operator": r.get("operator_id", ""), "created": when(r.get("create_time"))}
                          for r in (answer or {}).get("reason_templates", [])]
            table.update()
        await load()
