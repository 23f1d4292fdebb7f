"""Business customers (document 003): the list with search, filters and sorts; create and edit; contacts
with the one primary; transfer of ownership; statistics."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import (
    Form,
    Pager,
    attempt,
    dialog_actions,
    fen_from_yuan,
    table_labels,
    when,
    yuan,
    yuan_text,
)

STATUSES = ("BUSINESS_CUSTOMER_STATUS_POTENTIAL", "BUSINESS_CUSTOMER_STATUS_INTENT", "BUSINESS_CUSTOMER_STATUS_DEAL",
            "BUSINESS_CUSTOMER_STATUS_LOST")
GRADES = ("BUSINESS_CUSTOMER_GRADE_A", "BUSINESS_CUSTOMER_GRADE_B", "BUSINESS_CUSTOMER_GRADE_C",
          "BUSINESS_CUSTOMER_GRADE_D")
TYPES = ("BUSINESS_CUSTOMER_TYPE_ENTERPRISE", "BUSINESS_CUSTOMER_TYPE_INDIVIDUAL")
SORTS = ("BUSINESS_CUSTOMER_ORDER_BY_CREATE_TIME", "BUSINESS_CUSTOMER_ORDER_BY_LAST_FOLLOW_UP_TIME")
TEXT_FIELDS = ("name", "short_name", "industry", "scale", "address", "website", "phone", "email", "source",
               "payment_terms")
CONTACT_FIELDS = ("name", "title", "department", "mobile", "landline", "email", "wechat", "notes")


@ui.page("/business-customers", response_timeout=PAGE_TIMEOUT_S)
async def business_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    with frame(page, "biz.title"):
        await BusinessView(page).build()
    return None


class BusinessView:
    def __init__(self, page: Page) -> None:
        self.page, self.t, self.api = page, page.t, page.api
        self.state: dict[str, Any] = {"search": "", "statuses": [], "grades": [], "industries": [],
                                      "owner_staff_ids": [], "order_by": SORTS[0], "ascending": False}
        self.pager = Pager()
        self.customers: dict[str, dict[str, Any]] = {}

    async def build(self) -> None:
        t = self.t
        staff = await attempt(lambda: self.api.call("OrganizationService.ListStaff", {"page_size": 1000})) or {}
        self.staff = {s["staff_id"]: s.get("name") or s["staff_id"] for s in staff.get("staff", [])}
        with ui.row().classes("w-full gap-4") as self.stats_row:
            pass
        with ui.row().classes("w-full items-end gap-3"):
            ui.input(t("biz.search")).props("clearable debounce=400").classes("w-56").on_value_change(
                lambda e: self.apply("search", e.value or ""))
            for key, options in (("statuses", {s: t.enum("biz_status", s) for s in STATUSES}),
                                 ("grades", {g: t.enum("biz_grade", g) for g in GRADES}),
                                 ("owner_staff_ids", self.staff)):
                ui.select(options, multiple=True, value=[], label=t(f"biz.filter.{key}"),
                          on_change=lambda e, key=key: self.apply(key, e.value)).classes("w-36").props("use-chips")
            ui.input(t("biz.filter.industries")).props("debounce=400").classes("w-32").on_value_change(
                lambda e: self.apply("industries", [e.value] if e.value else []))
            ui.select({s: t.enum("biz_sort", s) for s in SORTS}, value=SORTS[0], label=t("members.sort"),
                      on_change=lambda e: self.apply("order_by", e.value)).classes("w-36")
            ui.space()
            ui.button(t("biz.add"), icon="add", on_click=lambda: self.edit_dialog(None))
        columns = [{"name": k, "label": t(f"biz.col.{k}"), "field": k, "align": "left"}
                   for k in ("name", "industry", "grade", "status", "owner", "contacts", "last_follow_up")]
        self.table = ui.table(columns=columns, rows=[], row_key="customer_id").classes("w-full").props(
            table_labels(t) + " hide-pagination").props(f'aria-label="{t("biz.title")}"')
        self.table.pagination = {"rowsPerPage": 0}
        self.table.on("rowClick", lambda e: self.detail_dialog(e.args[1]["customer_id"]))
        with ui.row().classes("w-full justify-end items-center gap-3"):
            self.total = ui.label("")
            self.previous = ui.button(t("table.previous"), on_click=lambda: self.turn(True)).props("flat")
            self.following = ui.button(t("table.next"), on_click=lambda: self.turn(False)).props("flat")
        await self.load()

    async def load_stats(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("BusinessCustomerService.GetBusinessCustomerStatistics", {}))
        stats = (answer or {}).get("statistics", {})
        self.stats_row.clear()
        with self.stats_row:
            tiles = [(t("biz.stats.total"), f"{int(stats.get('total') or 0):,}"),
                     (t("biz.stats.revenue"), yuan(stats.get("total_annual_revenue_fen"))),
                     (t("biz.stats.years"), f"{float(stats.get('average_cooperation_years') or 0):.1f}")]
            tiles += [(t.enum("biz_status", s.get("status")), f"{int(s.get('count') or 0):,}")
                      for s in stats.get("by_status", [])]
            for label, value in tiles:
                with ui.card().classes("min-w-32"):
                    ui.label(label).classes("text-xs text-grey-8")
                    ui.label(value).classes("text-xl font-medium")

    async def apply(self, key: str, value: Any) -> None:
        self.state[key] = value
        self.pager.reset()
        await self.load()

    async def turn(self, back: bool) -> None:
        if self.pager.back() if back else self.pager.forward():
            await self.load()

    async def load(self) -> None:
        t = self.t
        await self.load_stats()
        request = {"page_size": 20, "page_token": self.pager.token, "order_by": self.state["order_by"],
                   "ascending": self.state["ascending"],
                   "filter": {k: self.state[k] for k in ("search", "statuses", "grades", "industries",
                                                          "owner_staff_ids")}}
        answer = await attempt(lambda: self.api.call("BusinessCustomerService.ListBusinessCustomers", request))
        if answer is None:
            return
        self.pager.got(answer.get("next_page_token", ""))
        customers = answer.get("business_customers", [])
        self.customers = {c["customer_id"]: c for c in customers}
        self.table.rows = [{
            "customer_id": c["customer_id"], "name": c.get("name", ""), "industry": c.get("industry") or "—",
            "grade": t.enum("biz_grade", c.get("grade")), "status": t.enum("biz_status", c.get("status")),
            "owner": self.staff.get(c.get("owner_staff_id", ""), c.get("owner_staff_id") or "—"),
            "contacts": int(c.get("contact_count") or 0), "last_follow_up": when(c.get("last_follow_up_time")),
        } for c in customers]
        self.table.update()
        self.total.set_text(t("biz.total", n=f"{int(answer.get('total_size') or 0):,}"))
        self.previous.enabled, self.following.enabled = self.pager.index > 0, bool(self.pager.next_token)

    def edit_dialog(self, customer: dict[str, Any] | None) -> None:
        t = self.t
        customer = customer or {}
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-[40rem] max-w-full"):
            ui.label(t("biz.edit") if customer else t("biz.add")).classes("text-lg font-medium")
            inputs: dict[str, Any] = {}
            with ui.grid(columns=2).classes("w-full gap-x-4"):
                for key in TEXT_FIELDS:
                    inputs[key] = form.add(key, ui.input(t(f"biz.field.{key}"), value=customer.get(key, "")))
                inputs["type"] = form.add("type", ui.select({k: t.enum("biz_type", k) for k in TYPES},
                                          value=customer.get("type") or TYPES[0], label=t("biz.field.type")))
                inputs["status"] = form.add("status", ui.select({k: t.enum("biz_status", k) for k in STATUSES},
                                            value=customer.get("status") or STATUSES[0], label=t("biz.field.status")))
                inputs["owner_staff_id"] = form.add("owner_staff_id", ui.select(
                    self.staff, value=customer.get("owner_staff_id") or None, label=t("biz.field.owner")))
                credit = form.add("credit_limit_fen", ui.input(
                    t("biz.field.credit_limit"), value=yuan_text(int(customer.get("credit_limit_fen") or 0))))
                days = form.add("payment_days", ui.number(t("biz.field.payment_days"),
                                                          value=int(customer.get("payment_days") or 0), precision=0))
            form.error_banner()

            async def save() -> None:
                form.clear()
                try:
                    credit_fen = fen_from_yuan(credit.value)
                except ValueError:
                    form.show(ApiError(400, "INVALID_ARGUMENT", t("adjust.bad_value"), "credit_limit_fen"))
                    return
                body = {k: (v.value or "") for k, v in inputs.items()}
                body.update(credit_limit_fen=credit_fen, payment_days=int(days.value or 0))
                if customer:
                    owner = body.pop("owner_staff_id")
                    request = {"request_id": uuid.uuid4().hex, "customer_id": customer["customer_id"],
                               "business_customer": body, "update_mask": ",".join(_camel(k) for k in body)}
                    rpc = "BusinessCustomerService.UpdateBusinessCustomer"
                    del owner  # ownership changes through a transfer, which keeps its record
                else:
                    request = {"request_id": uuid.uuid4().hex, **body}
                    rpc = "BusinessCustomerService.CreateBusinessCustomer"
                if await form.submit(lambda: self.api.call(rpc, request)) is not None:
                    dialog.close()
                    await self.load()

            dialog_actions(t, dialog, save)
        dialog.open()

    async def detail_dialog(self, customer_id: str) -> None:
        t = self.t
        customer = self.customers.get(customer_id, {})
        with ui.dialog() as dialog, ui.card().classes("w-[56rem] max-w-full"):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label(customer.get("name", "")).classes("text-lg font-medium")
                with ui.row().classes("gap-2"):
                    def edit() -> None:
                        dialog.close()
                        self.edit_dialog(customer)

                    ui.button(t("crowds.edit"), on_click=edit).props("outline")
                    ui.button(t("biz.transfer"), on_click=lambda: self.transfer_dialog(customer, dialog)).props(
                        "outline")
            with ui.row().classes("gap-6 text-sm"):
                ui.label(f"{t('biz.col.grade')}：{t.enum('biz_grade', customer.get('grade'))}")
                ui.label(f"{t('biz.field.owner')}：{self.staff.get(customer.get('owner_staff_id', ''), '—')}")
                ui.label(f"{t('biz.field.credit_limit')}：{yuan(customer.get('credit_limit_fen'))}")
            ui.label(t("biz.contacts")).classes("font-medium")
            contacts_box = ui.column().classes("w-full")

            async def load_contacts() -> None:
                answer = await attempt(lambda: self.api.call("BusinessCustomerService.ListContacts", {
                    "customer_id": customer_id, "page_size": 100}))
                contacts_box.clear()
                with contacts_box:
                    columns = [{"name": k, "label": t(f"biz.contact.{k}"), "field": k, "align": "left"}
                               for k in ("name", "title", "mobile", "email", "primary")]
                    rows = [{"contact_id": c["contact_id"], "name": c.get("name", ""), "title": c.get("title", ""),
                             "mobile": c.get("mobile", ""), "email": c.get("email", ""),
                             "primary": t("biz.contact.is_primary") if c.get("is_primary") else ""}
                            for c in (answer or {}).get("contacts", [])]
                    table = ui.table(columns=columns, rows=rows, row_key="contact_id").classes("w-full").props(
                        table_labels(t)).props(f'aria-label="{t("biz.contacts")}"')
                    table.add_slot("body-cell-primary", f'''
                        <q-td :props="props">
                          <q-badge v-if="props.row.primary" color="positive" :label="props.row.primary" />
                          <q-btn v-else flat dense no-caps color="primary" label="{t('biz.contact.make_primary')}"
                                 @click="() => $parent.$emit('primary', props.row)" />
                        </q-td>''')
                    table.on("primary", lambda e: make_primary(e.args["contact_id"]))

            async def make_primary(contact_id: str) -> None:
                if await attempt(lambda: self.api.call("BusinessCustomerService.UpdateContact", {
                        "request_id": uuid.uuid4().hex, "contact_id": contact_id, "contact": {"is_primary": True},
                        "update_mask": "isPrimary"})) is not None:
                    await load_contacts()

            form = Form(t)
            with ui.row().classes("w-full items-start gap-2"):
                fields = {k: form.add(k, ui.input(t(f"biz.contact.{k}")).classes("w-32"))
                          for k in ("name", "title", "mobile", "email")}
                primary = ui.checkbox(t("biz.contact.is_primary"))

                async def add_contact() -> None:
                    request = {"request_id": uuid.uuid4().hex, "customer_id": customer_id,
                               "is_primary": bool(primary.value), **{k: v.value or "" for k, v in fields.items()}}
                    if await form.submit(lambda: self.api.call("BusinessCustomerService.CreateContact",
                                                               request)) is not None:
                        for element in fields.values():
                            element.set_value("")
                        await load_contacts()

                ui.button(t("biz.contact.add"), on_click=add_contact).props("outline")
            form.error_banner()
            await self.transfers_table(customer_id)
            with ui.row().classes("w-full justify-end"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
            await load_contacts()
        dialog.open()

    async def transfers_table(self, customer_id: str) -> None:
        """The customer's ownership transfers, newest first (ListOwnershipTransfers)."""
        t = self.t
        ui.label(t("biz.transfers")).classes("font-medium")
        answer = await attempt(lambda: self.api.call("BusinessCustomerService.ListOwnershipTransfers", {
            "customer_id": customer_id, "page_size": 100}))
        rows = [{"transfer_id": r["transfer_id"], "time": when(r.get("transfer_time")),
                 "from": self.staff.get(r.get("from_staff_id", ""), r.get("from_staff_id") or "—"),
                 "to": self.staff.get(r.get("to_staff_id", ""), r.get("to_staff_id") or "—"),
                 "reason": r.get("reason") or "—",
                 "operator": self.staff.get(r.get("operator_id", ""), r.get("operator_id") or "—")}
                for r in (answer or {}).get("transfers", [])]
        columns = [{"name": k, "label": t(f"biz.transfer_col.{k}"), "field": k, "align": "left"}
                   for k in ("time", "from", "to", "reason", "operator")]
        ui.table(columns=columns, rows=rows, row_key="transfer_id").classes("w-full").props(
            table_labels(t)).props(f'aria-label="{t("biz.transfers")}"')

    def transfer_dialog(self, customer: dict[str, Any], parent: ui.dialog) -> None:
        t = self.t
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("biz.transfer")).classes("text-lg")
            to_staff = form.add("to_staff_id", ui.select(self.staff, label=t("biz.transfer_to")).classes("w-full"))
            reason = form.add("reason", ui.input(t("member.reason")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                if await form.submit(lambda: self.api.call("BusinessCustomerService.TransferBusinessCustomer", {
                        "request_id": uuid.uuid4().hex, "customer_id": customer["customer_id"],
                        "to_staff_id": to_staff.value or "", "reason": reason.value or ""})) is not None:
                    dialog.close()
                    parent.close()
                    await self.load()

            dialog_actions(t, dialog, save)
        dialog.open()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
