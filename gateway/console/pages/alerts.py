"""Abnormal-member alerts (document 001): rules (at most 20, with store scope), the alert list with its
filters, an alert's orders with whitelist and disable, and the whitelist."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError, serves
from gateway.console.crowd_editor import Choices, load_choices
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

SCOPES = ("STORE_SCOPE_KIND_ALL", "STORE_SCOPE_KIND_CATEGORY", "STORE_SCOPE_KIND_BUSINESS_FORMAT",
          "STORE_SCOPE_KIND_FLOOR", "STORE_SCOPE_KIND_TAG", "STORE_SCOPE_KIND_STORES")
STATES = ("ALERT_STATE_OPEN", "ALERT_STATE_WHITELISTED", "ALERT_STATE_MEMBER_DISABLED")
MAX_RULES = 20


@ui.page("/alerts", response_timeout=PAGE_TIMEOUT_S)
async def alerts_page(request: Request, mall: str = "") -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "alerts.title"):
        if not serves("AlertService.ListAlertRules"):
            ui.label(t("alerts.unavailable")).props('role="status"')
            return None
        choices = await attempt(lambda: load_choices(page.api)) or Choices()
        mall_id = mall if mall in choices.malls else next(iter(choices.malls), "")
        ui.select(choices.malls, value=mall_id or None, label=t("crowds.mall"),
                  on_change=lambda e: ui.navigate.to(f"/alerts?mall={e.value}")).classes("w-56")
        view = AlertsView(page, mall_id, choices)
        with ui.tabs().props("align=left") as tabs:
            ui.tab("alerts", t("alerts.tab.alerts"))
            ui.tab("rules", t("alerts.tab.rules"))
            ui.tab("whitelist", t("alerts.tab.whitelist"))
        with ui.tab_panels(tabs, value="alerts").classes("w-full bg-transparent"):
            with ui.tab_panel("alerts").classes("p-0"):
                await view.alerts_panel()
            with ui.tab_panel("rules").classes("p-0"):
                view.rules_panel()
                await view.load_rules()
            with ui.tab_panel("whitelist").classes("p-0"):
                await view.whitelist_panel()
    return None


class AlertsView:
    def __init__(self, page: Page, mall_id: str, choices: Choices) -> None:
        self.page, self.t, self.api, self.mall_id, self.choices = page, page.t, page.api, mall_id, choices
        self.rules: list[dict[str, Any]] = []
        self.filters: dict[str, Any] = {"state": "", "store_member": None, "member_disabled": None, "rule_id": ""}
        self.pager = Pager()

    # -- rules ------------------------------------------------------------------------------------
    def rules_panel(self) -> None:
        t = self.t
        with ui.row().classes("items-center gap-4"):
            self.add_rule = ui.button(t("alerts.add_rule"), icon="add", on_click=lambda: self.rule_dialog(None))
            ui.label(t("alerts.rules_hint")).classes("text-xs text-grey-7")
        columns = [{"name": k, "label": t(f"alerts.rule.{k}"), "field": k, "align": "left"}
                   for k in ("name", "scope", "conditions", "evaluation", "editor")]
        columns.append({"name": "actions", "label": t("crowds.col.actions"), "field": "rule_id", "align": "left"})
        self.rule_table = ui.table(columns=columns, rows=[], row_key="rule_id").classes("w-full").props(
            table_labels(t)).props(f'aria-label="{t("alerts.tab.rules")}"')
        self.rule_table.add_slot("body-cell-actions", f'''
            <q-td :props="props">
              <q-btn flat dense no-caps color="primary" label="{t('crowds.edit')}"
                     @click="() => $parent.$emit('edit', props.row)" />
              <q-btn flat dense no-caps color="negative" label="{t('common.delete')}"
                     @click="() => $parent.$emit('delete', props.row)" />
            </q-td>''')
        self.rule_table.on("edit", lambda e: self.rule_dialog(next(r for r in self.rules
                                                                   if r["rule_id"] == e.args["rule_id"])))
        self.rule_table.on("delete", lambda e: self.delete_rule(e.args["rule_id"]))

    async def load_rules(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("AlertService.ListAlertRules", {"mall_id": self.mall_id}))
        self.rules = (answer or {}).get("rules", [])
        self.rule_table.rows = [{
            "rule_id": r["rule_id"], "name": r.get("name", ""), "scope": self.scope_text(r.get("scope") or {}),
            "conditions": self.conditions_text(r), "editor": r.get("editor_id") or r.get("creator_id", ""),
            "evaluation": t.enum("evaluation", (r.get("evaluation") or {}).get("state")),
        } for r in self.rules]
        self.rule_table.update()
        self.add_rule.enabled = len(self.rules) < MAX_RULES

    def scope_text(self, scope: dict[str, Any]) -> str:
        kind = scope.get("kind", "STORE_SCOPE_KIND_ALL")
        values = scope.get("values", [])
        if kind == "STORE_SCOPE_KIND_STORES":
            values = [self.choices.stores.get(v, v) for v in values]
        return self.t.enum("scope", kind) + (f"：{'、'.join(values)}" if values else "")

    def conditions_text(self, rule: dict[str, Any]) -> str:
        t, parts = self.t, []
        single = rule.get("single_order") or {}
        if single.get("enabled"):
            parts.append(t("alerts.cond.single_text", amount=yuan(single.get("min_paid_amount"))))
        for key in ("any_store", "scope_total"):
            window = rule.get(key) or {}
            if window.get("enabled"):
                limits = []
                if window.get("min_order_count") is not None:
                    limits.append(t("alerts.cond.count_text", n=window["min_order_count"]))
                if window.get("min_paid_amount") is not None:
                    limits.append(yuan(window["min_paid_amount"]))
                parts.append(t(f"alerts.cond.{key}_text", days=window.get("days", 0), limit=" / ".join(limits)))
        return "；".join(parts) or "—"

    async def delete_rule(self, rule_id: str) -> None:
        if await attempt(lambda: self.api.call("AlertService.DeleteAlertRule", {
                "request_id": uuid.uuid4().hex, "rule_id": rule_id})) is not None:
            await self.load_rules()

    def rule_dialog(self, rule: dict[str, Any] | None) -> None:
        t, c = self.t, self.choices
        rule = rule or {}
        form = Form(t)
        scope = rule.get("scope") or {"kind": "STORE_SCOPE_KIND_ALL", "values": []}
        with ui.dialog() as dialog, ui.card().classes("w-[36rem] max-w-full"):
            ui.label(t("alerts.edit_rule") if rule else t("alerts.add_rule")).classes("text-lg font-medium")
            name = form.add("name", ui.input(t("alerts.rule.name"), value=rule.get("name", "")).classes("w-full"))
            kind = form.add("scope.kind", ui.select({k: t.enum("scope", k) for k in SCOPES}, value=scope["kind"],
                                                    label=t("alerts.scope")).classes("w-full"))
            value_options: dict[str, str] = {}
            values = form.add("scope.values", ui.select(value_options, multiple=True, value=[],
                                                        label=t("alerts.scope_values"), new_value_mode="add-unique")
                              .classes("w-full").props("use-chips"))

            def scope_options(selected: str) -> None:
                options = dict(c.stores) if selected == "STORE_SCOPE_KIND_STORES" else (
                    {v: v for v in c.store_categories} if selected == "STORE_SCOPE_KIND_CATEGORY" else {})
                values.options = options
                values.value = [v for v in scope.get("values", []) if selected == scope["kind"]]
                values.visible = selected != "STORE_SCOPE_KIND_ALL"
                values.update()

            kind.on_value_change(lambda e: scope_options(e.value))
            scope_options(scope["kind"])
            single = rule.get("single_order") or {}
            with ui.row().classes("w-full items-center gap-3"):
                single_on = ui.checkbox(t("alerts.cond.single"), value=bool(single.get("enabled")))
                single_amount = form.add("single_order.min_paid_amount", ui.input(
                    t("alerts.min_amount"), value=yuan_text(int(single.get("min_paid_amount") or 0))).classes("w-40"))
            windows = {}
            for key in ("any_store", "scope_total"):
                window = rule.get(key) or {}
                with ui.row().classes("w-full items-center gap-3"):
                    enabled = ui.checkbox(t(f"alerts.cond.{key}"), value=bool(window.get("enabled")))
                    days = form.add(f"{key}.days", ui.number(t("alerts.days"), value=int(window.get("days") or 7),
                                                             min=1, max=90, precision=0).classes("w-24"))
                    count = form.add(f"{key}.min_order_count", ui.input(
                        t("alerts.min_count"), value=str(window.get("min_order_count", ""))).classes("w-28"))
                    amount = form.add(f"{key}.min_paid_amount", ui.input(
                        t("alerts.min_amount"), value=yuan_text(int(window["min_paid_amount"]))
                        if window.get("min_paid_amount") is not None else "").classes("w-36"))
                windows[key] = (enabled, days, count, amount)
            form.error_banner()

            async def save() -> None:
                form.clear()
                try:
                    body: dict[str, Any] = {
                        "name": name.value or "", "scope": {"kind": kind.value, "values": list(values.value or [])},
                        "single_order": {"enabled": bool(single_on.value),
                                         "min_paid_amount": fen_from_yuan(single_amount.value or "0")}}
                    for key, (enabled, days, count, amount) in windows.items():
                        window: dict[str, Any] = {"enabled": bool(enabled.value), "days": int(days.value or 0)}
                        if str(count.value or "").strip():
                            window["min_order_count"] = int(str(count.value).strip())
                        if str(amount.value or "").strip():
                            window["min_paid_amount"] = fen_from_yuan(amount.value)
                        body[key] = window
                except ValueError:
                    form.show(ApiError(400, "INVALID_ARGUMENT", t("adjust.bad_value"), None))
                    return
                if rule:
                    request = {"request_id": uuid.uuid4().hex, "rule": {"rule_id": rule["rule_id"], **body},
                               "update_mask": "name,scope,singleOrder,anyStore,scopeTotal"}
                    rpc = "AlertService.UpdateAlertRule"
                else:
                    request = {"request_id": uuid.uuid4().hex, "mall_id": self.mall_id, **body}
                    rpc = "AlertService.CreateAlertRule"
                if await form.submit(lambda: self.api.call(rpc, request)) is not None:
                    dialog.close()
                    await self.load_rules()

            dialog_actions(t, dialog, save)
        dialog.open()

    # -- alerts -----------------------------------------------------------------------------------
    async def alerts_panel(self) -> None:
        t = self.t
        with ui.row().classes("items-end gap-3"):
            ui.select({"": t("alerts.all"), **{s: t.enum("alert_state", s) for s in STATES}}, value="",
                      label=t("alerts.filter.state"), on_change=lambda e: self.apply("state", e.value)).classes("w-36")
            for key in ("store_member", "member_disabled"):
                ui.select({"": t("alerts.all"), "yes": t("common.yes"), "no": t("common.no")}, value="",
                          label=t(f"alerts.filter.{key}"),
                          on_change=lambda e, key=key: self.apply(key, {"yes": True, "no": False}.get(e.value))
                          ).classes("w-36")
            ui.space()
            ui.button(t("alerts.download"), icon="download", on_click=self.download).props("outline")
        columns = [{"name": k, "label": t(f"alerts.col.{k}"), "field": k, "align": "left"}
                   for k in ("member", "rule", "conditions", "orders", "state", "last")]
        self.alert_table = ui.table(columns=columns, rows=[], row_key="alert_id").classes("w-full").props(
            table_labels(t) + " hide-pagination").props(f'aria-label="{t("alerts.tab.alerts")}"')
        self.alert_table.pagination = {"rowsPerPage": 0}
        self.alert_table.on("rowClick", lambda e: self.alert_dialog(e.args[1]["alert_id"]))
        with ui.row().classes("w-full justify-end"):
            self.previous = ui.button(t("table.previous"), on_click=lambda: self.turn(True)).props("flat")
            self.following = ui.button(t("table.next"), on_click=lambda: self.turn(False)).props("flat")
        await self.load_alerts()

    def alert_filter(self) -> dict[str, Any]:
        f: dict[str, Any] = {"mall_id": self.mall_id, "state": self.filters["state"]}
        for key in ("store_member", "member_disabled"):
            if self.filters[key] is not None:
                f[key] = self.filters[key]
        return f

    async def apply(self, key: str, value: Any) -> None:
        self.filters[key] = value
        self.pager.reset()
        await self.load_alerts()

    async def turn(self, back: bool) -> None:
        if self.pager.back() if back else self.pager.forward():
            await self.load_alerts()

    async def load_alerts(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("AlertService.ListAlerts", {
            "filter": self.alert_filter(), "page_size": 20, "page_token": self.pager.token}))
        if answer is None:
            return
        self.pager.got(answer.get("next_page_token", ""))
        self.alert_table.rows = [{
            "alert_id": a["alert_id"], "member": a["member_id"], "rule": a.get("rule_name", ""),
            "conditions": "、".join(t.enum("alert_condition", c) for c in a.get("conditions", [])),
            "orders": int(a.get("order_count") or 0), "state": t.enum("alert_state", a.get("state")),
            "last": when(a.get("last_trigger_time"))} for a in answer.get("alerts", [])]
        self.alert_table.update()
        self.previous.enabled, self.following.enabled = self.pager.index > 0, bool(self.pager.next_token)

    async def download(self) -> None:
        from gateway.console.widgets import download_csv

        notice = ui.notification(self.t("common.downloading"), spinner=True, timeout=None)
        answer = await attempt(lambda: self.api.call("AlertService.ExportAlerts", {"filter": self.alert_filter()}))
        notice.dismiss()
        if answer is not None:
            download_csv(answer, "alerts.csv")

    async def alert_dialog(self, alert_id: str) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("AlertService.GetAlert", {"alert_id": alert_id}))
        if answer is None:
            return
        alert = answer.get("alert", {})
        with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full"):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label(t("alerts.detail", rule=alert.get("rule_name", ""))).classes("text-lg font-medium")
                ui.link(t("alerts.open_member"), f"/members/{alert.get('member_id')}")
            ui.label(t.enum("alert_state", alert.get("state")))
            rows = [{"order_id": o.get("order_id"), "store": self.choices.stores.get(o.get("store_id", ""),
                                                                                     o.get("store_id", "")),
                     "paid": yuan(o.get("paid_amount")), "time": when(o.get("occur_time")),
                     "condition": t.enum("alert_condition", o.get("condition"))} for o in alert.get("orders", [])]
            columns = [{"name": k, "label": t(f"alerts.order.{k}"), "field": k, "align": "left"}
                       for k in ("order_id", "store", "paid", "time", "condition")]
            ui.table(columns=columns, rows=rows, row_key="order_id").classes("w-full").props(table_labels(t)).props(
                f'aria-label="{t("alerts.orders")}"')

            async def whitelist() -> None:
                if await attempt(lambda: self.api.call("AlertService.AddWhitelistEntry", {
                        "request_id": uuid.uuid4().hex, "member_id": alert["member_id"],
                        "reason": t("alerts.whitelist_reason")})) is not None:
                    dialog.close()
                    await self.load_alerts()

            async def disable() -> None:
                if await attempt(lambda: self.api.call("AlertService.DisableAlertMember", {
                        "request_id": uuid.uuid4().hex, "alert_id": alert_id})) is not None:
                    dialog.close()
                    await self.load_alerts()

            with ui.row().classes("w-full justify-end"):
                ui.button(t("member.add_whitelist"), on_click=whitelist).props("outline")
                ui.button(t("member.disable_card"), on_click=disable).props("color=negative")
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
        dialog.open()

    # -- whitelist --------------------------------------------------------------------------------
    async def whitelist_panel(self) -> None:
        t = self.t
        columns = [{"name": k, "label": t(f"alerts.white.{k}"), "field": k, "align": "left"}
                   for k in ("member_id", "reason", "operator", "time")]
        columns.append({"name": "actions", "label": t("crowds.col.actions"), "field": "member_id", "align": "left"})
        table = ui.table(columns=columns, rows=[], row_key="member_id").classes("w-full").props(
            table_labels(t)).props(f'aria-label="{t("alerts.tab.whitelist")}"')
        table.add_slot("body-cell-actions", f'''
            <q-td :props="props">
              <q-btn flat dense no-caps color="negative" label="{t('alerts.remove')}"
                     @click="() => $parent.$emit('remove', props.row)" />
            </q-td>''')

        async def load() -> None:
            answer = await attempt(lambda: self.api.call("AlertService.ListWhitelistEntries", {"page_size": 1000}))
            table.rows = [{"member_id": e["member_id"], "reason": e.get("reason", ""),
                           "operator": e.get("operator_id", ""), "time": when(e.get("create_time"))}
                          for e in (answer or {}).get("entries", [])]
            table.update()

        async def remove(member_id: str) -> None:
            if await attempt(lambda: self.api.call("AlertService.RemoveWhitelistEntry", {
                    "request_id": uuid.uuid4().hex, "member_id": member_id})) is not None:
                await load()

        table.on("remove", lambda e: remove(e.args["member_id"]))
        await load()
