"""Business customers (document 003): the list with search, filters and sorts; create and edit; contacts
with the one primary; follow-up records; transfer of ownership (an administrator directly; a salesperson
applies and an administrator approves or rejects with a note); statistics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import (
    DISPLAY_ZONE,
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
FOLLOW_UP_METHODS = ("FOLLOW_UP_METHOD_VISIT", "FOLLOW_UP_METHOD_CALL", "FOLLOW_UP_METHOD_WECHAT",
                     "FOLLOW_UP_METHOD_EMAIL")
APPLICATION_STATES = ("TRANSFER_APPLICATION_STATE_PENDING", "TRANSFER_APPLICATION_STATE_APPROVED",
                      "TRANSFER_APPLICATION_STATE_REJECTED")
NO_METHOD = "FOLLOW_UP_METHOD_UNSPECIFIED"  # none chosen: the API names the field
ADMIN_ROLES = ("super_admin", "mall_admin")  # who transfers directly and decides applications (5.4)


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
        self.admin = page.session.role in ADMIN_ROLES

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
            ui.button(t("biz.applications"), icon="assignment_ind", on_click=self.applications_dialog).props(
                "outline")
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
                    if self.admin:
                        ui.button(t("biz.transfer"), on_click=lambda: self.transfer_dialog(customer, dialog)).props(
                            "outline")
                    else:
                        ui.button(t("biz.apply"), on_click=lambda: self.transfer_dialog(customer, dialog,
                                                                                         apply=True)).props("outline")
            with ui.row().classes("gap-6 text-sm"):
                ui.label(f"{t('biz.col.grade')}：{t.enum('biz_grade', customer.get('grade'))}")
                ui.label(f"{t('biz.field.owner')}：{self.staff.get(customer.get('owner_staff_id', ''), '—')}")
                ui.label(f"{t('biz.field.credit_limit')}：{yuan(customer.get('credit_limit_fen'))}")
            ui.label(t("biz.contacts")).classes("font-medium")
            contacts_box = ui.column().classes("w-full")

            async def load_contacts() -> None:
                answer = await attempt(lambda: self.api.call("BusinessCustomerService.ListContacts", {
                    "customer_id": customer_id, "page_size": 100}))
                follow_ups.contacts({c["contact_id"]: c.get("name", "") for c in (answer or {}).get("contacts", [])})
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
            follow_ups = FollowUps(self, customer_id)
            await follow_ups.build()
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

    def transfer_dialog(self, customer: dict[str, Any], parent: ui.dialog, apply: bool = False) -> None:
        """An administrator's transfer (TransferBusinessCustomer), or a salesperson's application for one
        (CreateTransferApplication), which waits for an administrator."""
        t = self.t
        form = Form(t)
        others = {k: v for k, v in self.staff.items() if k != customer.get("owner_staff_id")} if apply else self.staff
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("biz.apply") if apply else t("biz.transfer")).classes("text-lg")
            if apply:
                ui.label(t("biz.apply_note")).classes("text-sm text-grey-7")
            to_staff = form.add("to_staff_id", ui.select(others, label=t("biz.transfer_to")).classes("w-full"))
            reason = form.add("reason", ui.input(t("member.reason")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                rpc = "CreateTransferApplication" if apply else "TransferBusinessCustomer"
                if await form.submit(lambda: self.api.call(f"BusinessCustomerService.{rpc}", {
                        "request_id": uuid.uuid4().hex, "customer_id": customer["customer_id"],
                        "to_staff_id": to_staff.value or "", "reason": reason.value or ""})) is not None:
                    dialog.close()
                    parent.close()
                    if apply:
                        ui.notify(t("biz.applied"), type="positive")
                    await self.load()

            dialog_actions(t, dialog, save)
        dialog.open()

    def staff_name(self, staff_id: str | None) -> str:
        return self.staff.get(staff_id or "", staff_id or "—")

    async def applications_dialog(self) -> None:
        """Transfer applications, newest first: an administrator sees all and decides the pending ones; a
        salesperson sees those they made or that name them."""
        t = self.t
        names: dict[str, str] = {}
        with ui.dialog() as dialog, ui.card().classes("w-[64rem] max-w-full"):
            ui.label(t("biz.applications")).classes("text-lg font-medium")
            states = ui.select({s: t.enum("application_state", s) for s in APPLICATION_STATES}, multiple=True,
                               value=[], label=t("biz.application.state")).classes("w-64").props("use-chips")
            columns = [{"name": k, "label": t(f"biz.application.{k}"), "field": k, "align": "left"}
                       for k in ("time", "customer", "from", "to", "requested_by", "reason", "state", "decision")]
            if self.admin:
                columns.append({"name": "actions", "label": "", "field": "actions"})
            table = ui.table(columns=columns, rows=[], row_key="transfer_application_id").classes("w-full").props(
                table_labels(t)).props(f'aria-label="{t("biz.applications")}"')
            table.add_slot("body-cell-actions", f'''
                <q-td :props="props">
                  <template v-if="props.row.pending">
                    <q-btn flat dense no-caps color="positive" label="{t('biz.application.approve')}"
                      @click="() => $parent.$emit('decide', {{id: props.row.transfer_application_id, ok: true}})" />
                    <q-btn flat dense no-caps color="negative" label="{t('biz.application.reject')}"
                      @click="() => $parent.$emit('decide', {{id: props.row.transfer_application_id, ok: false}})" />
                  </template>
                </q-td>''')

            async def customer_name(customer_id: str) -> str:
                if customer_id in self.customers:
                    return str(self.customers[customer_id].get("name") or customer_id)
                if customer_id not in names:
                    found = await attempt(lambda: self.api.call("BusinessCustomerService.GetBusinessCustomer",
                                                                {"customer_id": customer_id}))
                    names[customer_id] = str(((found or {}).get("business_customer") or {}).get("name")
                                             or customer_id)
                return names[customer_id]

            async def load() -> None:
                answer = await attempt(lambda: self.api.call("BusinessCustomerService.ListTransferApplications", {
                    "page_size": 100, "states": list(states.value or [])}))
                rows = []
                for a in (answer or {}).get("transfer_applications", []):
                    state = a.get("state", "")
                    decision = "—"
                    if a.get("decided_by"):
                        decision = f"{self.staff_name(a['decided_by'])}：{a.get('decision_note') or '—'}"
                    rows.append({
                        "transfer_application_id": a["transfer_application_id"], "time": when(a.get("create_time")),
                        "customer": await customer_name(a.get("customer_id", "")),
                        "from": self.staff_name(a.get("from_staff_id")), "to": self.staff_name(a.get("to_staff_id")),
                        "requested_by": self.staff_name(a.get("requested_by")), "reason": a.get("reason") or "—",
                        "state": t.enum("application_state", state), "decision": decision,
                        "pending": state == "TRANSFER_APPLICATION_STATE_PENDING"})
                table.rows = rows
                table.update()

            async def decided() -> None:
                await load()
                await self.load()

            table.on("decide", lambda e: self.decision_dialog(e.args["id"], bool(e.args["ok"]), decided))
            states.on_value_change(load)
            with ui.row().classes("w-full justify-end"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
            await load()
        dialog.open()

    def decision_dialog(self, application_id: str, approve: bool, decided: Any) -> None:
        """Approve (ownership moves) or reject an application, with the administrator's note."""
        t = self.t
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("biz.application.approve_title") if approve else t("biz.application.reject_title")).classes(
                "text-lg")
            note = form.add("decision_note", ui.input(t("biz.application.note")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                rpc = "ApproveTransferApplication" if approve else "RejectTransferApplication"
                if await form.submit(lambda: self.api.call(f"BusinessCustomerService.{rpc}", {
                        "request_id": uuid.uuid4().hex, "transfer_application_id": application_id,
                        "decision_note": note.value or ""})) is not None:
                    dialog.close()
                    await decided()

            dialog_actions(t, dialog, save, "" if approve else "color=negative")
        dialog.open()


class FollowUps:
    """A business customer's follow-up records (ListFollowUps, newest first) and adding one (CreateFollowUp)."""

    def __init__(self, view: BusinessView, customer_id: str) -> None:
        self.view, self.t, self.api, self.customer_id = view, view.t, view.api, customer_id

    async def build(self) -> None:
        t = self.t
        ui.label(t("biz.follow_ups")).classes("font-medium")
        columns = [{"name": k, "label": t(f"biz.follow_up.{k}"), "field": k, "align": "left"}
                   for k in ("time", "method", "contact", "content", "staff")]
        self.table = ui.table(columns=columns, rows=[], row_key="follow_up_id").classes("w-full").props(
            table_labels(t)).props(f'aria-label="{t("biz.follow_ups")}"')
        form = Form(t)
        with ui.row().classes("w-full items-start gap-2"):
            method = form.add("method", ui.select({m: t.enum("follow_up_method", m) for m in FOLLOW_UP_METHODS},
                                                  label=t("biz.follow_up.method")).classes("w-28"))
            self.contact = form.add("contact_id", ui.select({}, label=t("biz.follow_up.contact"),
                                                            clearable=True).classes("w-36"))
            content = form.add("content", ui.input(t("biz.follow_up.content")).classes("w-56"))
            moment = form.add("follow_up_time", ui.input(t("biz.follow_up.time_optional"),
                                                         placeholder="2026-01-31 18:30").classes("w-40"))

            async def add() -> None:
                request = {"request_id": uuid.uuid4().hex, "customer_id": self.customer_id,
                           "method": method.value or NO_METHOD, "contact_id": self.contact.value or "",
                           "content": content.value or ""}
                form.clear()
                if (moment.value or "").strip():  # typed in Beijing time; empty means now
                    try:
                        when_typed = datetime.fromisoformat(moment.value.strip()).replace(tzinfo=DISPLAY_ZONE)
                    except ValueError:
                        form.show(ApiError(400, "INVALID_ARGUMENT", t("biz.follow_up.bad_time"), "follow_up_time"))
                        return
                    request["follow_up_time"] = when_typed.isoformat()
                answer = await form.submit(lambda: self.api.call("BusinessCustomerService.CreateFollowUp", request))
                if answer is not None:
                    content.set_value("")
                    moment.set_value("")
                    await self.load()
                    await self.view.load()

            ui.button(t("biz.follow_up.add"), on_click=add).props("outline")
        form.error_banner()
        await self.load()

    def contacts(self, names: dict[str, str]) -> None:
        self.contact.set_options(names)

    async def load(self) -> None:
        answer = await attempt(lambda: self.api.call("BusinessCustomerService.ListFollowUps", {
            "customer_id": self.customer_id, "page_size": 100}))
        self.table.rows = [{
            "follow_up_id": f["follow_up_id"], "time": when(f.get("follow_up_time")),
            "method": self.t.enum("follow_up_method", f.get("method")), "contact": f.get("contact_name") or "—",
            "content": f.get("content") or "—", "staff": self.view.staff_name(f.get("staff_id")),
        } for f in (answer or {}).get("follow_ups", [])]
        self.table.update()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
