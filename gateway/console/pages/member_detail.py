"""Member detail (document 001): profile, card, level, balances and statements, adjustments, consumption,
interaction malls, timeline; disable the card, add to the whitelist."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.crowd_editor import CHOICE_CALLS, Choices, load_choices
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.pages.member_orders import MemberOrders, orders_request
from gateway.console.widgets import (
    DISPLAY_ZONE,
    Form,
    Pager,
    attempt,
    dialog_actions,
    download_csv,
    fen_from_yuan,
    points,
    table_labels,
    when,
    yuan,
)

ASSETS = ("ASSET_POINTS", "ASSET_RED_PACKET", "ASSET_BALANCE")
VOUCHER_PREFIX = "/v1/voucherFiles/"  # UploadVoucherFile's references
VOUCHER_MAX_BYTES = 10 * 1024 * 1024


def voucher_cell(t: Any, voucher: str) -> dict[str, str]:
    """A statement row's 变动凭证: a stored file opens with a click; another reference shows as it reads."""
    if voucher.startswith(VOUCHER_PREFIX):
        return {"voucher": t("statement.open_voucher"), "voucher_ref": voucher}
    return {"voucher": voucher or "—", "voucher_ref": ""}


def amount_text(asset: str, value: Any) -> str:
    return points(value) if asset == "ASSET_POINTS" else yuan(value)


def fact(label: str, value: str, name: str = "") -> None:
    with ui.column().classes("gap-0 min-w-36"):
        ui.label(label).classes("text-xs text-grey-7")
        ui.label(value or "—").props(f'data-testid="{name}"' if name else "")


def first_calls(member_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The calls the page makes as it first draws (the same requests, so each takes its prefetched answer)."""
    return [("MemberService.GetMember", {"member_id": member_id}), *CHOICE_CALLS,
            ("LedgerService.GetBalances", {"member_id": member_id}),
            *[("LedgerService.ListEntries", statement_request(member_id, asset, "")) for asset in ASSETS],
            ("LevelService.ListLevelChanges", {"member_id": member_id, "page_size": 100}),
            ("LedgerService.GetConsumptionSummary", {"member_id": member_id}),
            ("LedgerService.ListMemberOrders", orders_request(member_id, {}, 20, "")),
            ("MemberService.ListTimeline", {"customer_id": member_id, "page_size": 100})]


def statement_request(member_id: str, asset: str, page_token: str) -> dict[str, Any]:
    return {"member_id": member_id, "asset": asset, "page_size": 20, "page_token": page_token}


@ui.page("/members/{member_id}", response_timeout=PAGE_TIMEOUT_S)
async def member_detail_page(request: Request, member_id: str) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "member.title"):
        # Everything the page shows before it answers, at once rather than one call after another.
        await page.api.prefetch(first_calls(member_id))
        answer = await attempt(lambda: page.api.call("MemberService.GetMember", {"member_id": member_id}))
        if answer is None:
            ui.label(t("member.not_found")).props('role="alert"')
            return None
        choices = await attempt(lambda: load_choices(page.api)) or Choices()
        view = MemberView(page, answer.get("member", answer), choices)
        await view.build()
    return None


class MemberView:
    def __init__(self, page: Page, member: dict[str, Any], choices: Choices) -> None:
        self.page, self.t, self.api = page, page.t, page.api
        self.member, self.choices = member, choices
        self.member_id = member["member_id"]

    async def reload_member(self) -> None:
        answer = await attempt(lambda: self.api.call("MemberService.GetMember", {"member_id": self.member_id}))
        if answer is not None:
            self.member = answer.get("member", answer)
            self.profile.refresh()

    async def build(self) -> None:
        self.profile()
        with ui.tabs().classes("w-full").props("align=left") as tabs:
            assets_tab = ui.tab("assets", self.t("member.tab.assets"))
            level_tab = ui.tab("levels", self.t("member.tab.levels"))
            consumption_tab = ui.tab("consumption", self.t("member.tab.consumption"))
            timeline_tab = ui.tab("timeline", self.t("member.tab.timeline"))
        with ui.tab_panels(tabs, value=assets_tab).classes("w-full bg-transparent"):
            with ui.tab_panel(assets_tab).classes("p-0"):
                await self.assets()
            with ui.tab_panel(level_tab).classes("p-0"):
                await self.level_changes()
            with ui.tab_panel(consumption_tab).classes("p-0"):
                await self.consumption()
            with ui.tab_panel(timeline_tab).classes("p-0"):
                await self.timeline()

    # -- profile, card, level ---------------------------------------------------------------------
    @ui.refreshable_method
    def profile(self) -> None:
        t, m = self.t, self.member
        card = m.get("card") or {}
        level = int(m.get("level") or 0)
        with ui.card().classes("w-full"):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label(m.get("name") or m.get("real_name") or m.get("phone") or self.member_id).classes(
                    "text-lg font-medium")
                with ui.row().classes("gap-2"):
                    if m.get("disabled"):
                        ui.badge(t("member.disabled"), color="negative")
                    ui.button(t("member.enable_card") if m.get("disabled") else t("member.disable_card"),
                              on_click=self.disable_dialog).props("outline color=negative")
                    ui.button(t("member.add_whitelist"), on_click=self.whitelist_dialog).props("outline")
            with ui.row().classes("w-full gap-6"):
                fact(t("member.phone"), m.get("phone", ""))
                fact(t("member.email"), m.get("email", ""))
                fact(t("member.real_name"), m.get("real_name", ""))
                fact(t("member.gender"), t.enum("gender", m.get("gender")))
                fact(t("member.birthday"), m.get("birthday", ""))
                fact(t("member.registered"), when(m.get("registration_time")))
                fact(t("member.registration_mall"), self.mall(m.get("registration_mall_id")))
                fact(t("member.review_status"), t.enum("review", m.get("review_status")))
                fact(t("member.store_member"), t("common.yes") if m.get("store_member") else t("common.no"))
            ui.separator()
            ui.label(t("member.card")).classes("font-medium")
            with ui.row().classes("w-full gap-6"):
                fact(t("member.card_number"), card.get("card_number", ""), "card-number")
                fact(t("member.open_mall"), self.mall(card.get("open_mall_id")))
                fact(t("member.open_channel"), t.enum("channel", card.get("open_channel")))
                fact(t("member.promotion_channel"), card.get("promotion_channel", ""))
                fact(t("member.open_scene"), card.get("open_scene", ""))
                fact(t("member.open_time"), when(card.get("open_time")))
            ui.separator()
            with ui.row().classes("w-full items-center gap-6"):
                fact(t("member.level"), self.level_name(level), "level")
                fact(t("member.level_expire"), when(m.get("level_expire_time"), with_seconds=False))
                fact(t("member.level_frozen"), t("common.yes") if m.get("level_frozen") else t("common.no"),
                     "level-frozen")
                ui.button(t("member.change_level"), on_click=self.level_dialog).props("outline")
                ui.button(t("member.unfreeze") if m.get("level_frozen") else t("member.freeze"),
                          on_click=self.toggle_freeze).props("flat")
            ui.separator()
            interaction = [self.mall(i) for i in m.get("interaction_mall_ids", [])]
            fact(t("member.interaction_malls"), "、".join(interaction) if interaction else "—", "interaction-malls")

    def mall(self, mall_id: str | None) -> str:
        return self.choices.malls.get(mall_id or "", mall_id or "—")

    def level_name(self, level: int) -> str:
        return self.choices.levels.get(level, self.t("level.none") if level == 0 else str(level))

    async def level_dialog(self) -> None:
        t = self.t
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("member.change_level")).classes("text-lg font-medium")
            options = {0: t("level.none"), **self.choices.levels}
            to_level = form.add("to_level", ui.select(options, value=int(self.member.get("level") or 0),
                                                      label=t("level.target")).classes("w-full"))
            reason = form.add("reason", ui.input(t("level.reason")).classes("w-full"))
            ui.label(t("level.freeze_note")).classes("text-xs text-grey-7")
            form.error_banner()

            async def save() -> None:
                done = await form.submit(lambda: self.api.call("LevelService.ChangeMemberLevel", {
                    "request_id": uuid.uuid4().hex, "member_id": self.member_id, "to_level": to_level.value,
                    "reason": reason.value or ""}))
                if done is not None:
                    dialog.close()
                    ui.notify(t("common.saved"), type="positive")
                    await self.reload_member()
                    self.level_table.refresh()

            dialog_actions(t, dialog, save)
        dialog.open()

    async def toggle_freeze(self) -> None:
        frozen = not self.member.get("level_frozen")
        if await attempt(lambda: self.api.call("LevelService.SetLevelFrozen", {
                "request_id": uuid.uuid4().hex, "member_id": self.member_id, "frozen": frozen})) is not None:
            await self.reload_member()

    async def disable_dialog(self) -> None:
        t = self.t
        disabling = not self.member.get("disabled")
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("member.disable_card") if disabling else t("member.enable_card")).classes("text-lg")
            if disabling:
                ui.label(t("member.disable_warning")).classes("text-negative text-sm")
            reason = form.add("reason", ui.input(t("member.reason")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                if await form.submit(lambda: self.api.call("MemberService.SetMemberDisabled", {
                        "request_id": uuid.uuid4().hex, "member_id": self.member_id, "disabled": disabling,
                        "reason": reason.value or ""})) is not None:
                    dialog.close()
                    await self.reload_member()

            dialog_actions(t, dialog, save, "color=negative" if disabling else "")
        dialog.open()

    async def whitelist_dialog(self) -> None:
        t = self.t
        form = Form(t)
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(t("member.add_whitelist")).classes("text-lg")
            ui.label(t("member.whitelist_note")).classes("text-sm text-grey-7")
            reason = form.add("reason", ui.input(t("member.reason")).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                if await form.submit(lambda: self.api.call("AlertService.AddWhitelistEntry", {
                        "request_id": uuid.uuid4().hex, "member_id": self.member_id,
                        "reason": reason.value or ""})) is not None:
                    dialog.close()
                    ui.notify(t("member.whitelisted"), type="positive")

            dialog_actions(t, dialog, save)
        dialog.open()

    # -- balances, statements, adjustments --------------------------------------------------------
    async def assets(self) -> None:
        t = self.t
        self.balances: dict[str, ui.label] = {}
        self.statements: dict[str, Any] = {}
        with ui.row().classes("w-full gap-4"):
            for asset in ASSETS:
                with ui.card().classes("min-w-48").props(f'aria-label="{t.enum("asset", asset)}"'):
                    ui.label(t.enum("asset", asset)).classes("text-sm text-grey-8")
                    self.balances[asset] = ui.label("—").classes("text-2xl font-medium").props(
                        f'data-testid="balance-{asset}"')
                    ui.button(t("adjust.open"), on_click=lambda asset=asset: self.adjust_dialog(asset)).props(
                        "flat dense")
        with ui.tabs().props("align=left dense") as tabs:
            for asset in ASSETS:
                ui.tab(asset, t("statement.of", asset=t.enum("asset", asset)))
        with ui.tab_panels(tabs, value=ASSETS[0]).classes("w-full"):
            for asset in ASSETS:
                with ui.tab_panel(asset).classes("p-0"):
                    self.statements[asset] = self.statement_table(asset)
        await self.load_balances()
        for asset in ASSETS:
            await self.load_statement(asset)

    async def load_balances(self) -> None:
        answer = await attempt(lambda: self.api.call("LedgerService.GetBalances", {"member_id": self.member_id}))
        for account in (answer or {}).get("accounts", []):
            asset = account.get("asset", "")
            if asset in self.balances:
                self.balances[asset].set_text(amount_text(asset, account.get("balance")))

    def statement_table(self, asset: str) -> dict[str, Any]:
        t = self.t
        columns = [
            {"name": "time", "label": t("statement.time"), "field": "time", "align": "left"},
            {"name": "kind", "label": t("statement.kind"), "field": "kind", "align": "left"},
            {"name": "amount", "label": t("statement.amount"), "field": "amount"},
            {"name": "balance", "label": t("statement.balance_after"), "field": "balance"},
            {"name": "reason", "label": t("statement.reason"), "field": "reason", "align": "left"},
            {"name": "note", "label": t("statement.note"), "field": "note", "align": "left"},
            {"name": "mall", "label": t("statement.mall"), "field": "mall", "align": "left"},
            {"name": "operator", "label": t("statement.operator"), "field": "operator", "align": "left"},
            {"name": "voucher", "label": t("statement.voucher"), "field": "voucher", "align": "left"},
        ]
        table = ui.table(columns=columns, rows=[], row_key="entry_id").classes("w-full").props(
            table_labels(t) + " hide-pagination").props(
                f'aria-label="{t("statement.of", asset=t.enum("asset", asset))}"')
        table.pagination = {"rowsPerPage": 0}
        table.add_slot("body-cell-voucher", """<q-td :props="props">
            <q-btn v-if="props.row.voucher_ref" flat dense no-caps color="primary" :label="props.value"
                   @click="() => $parent.$emit('voucher', props.row)" />
            <span v-else>{{ props.value }}</span></q-td>""")
        table.on("voucher", lambda e: self.open_voucher(e.args.get("voucher_ref", "")))
        pager = Pager()
        with ui.row().classes("w-full justify-end"):
            previous = ui.button(t("table.previous"), on_click=lambda: self.turn(asset, True)).props("flat dense")
            following = ui.button(t("table.next"), on_click=lambda: self.turn(asset, False)).props("flat dense")
        return {"table": table, "pager": pager, "previous": previous, "next": following}

    async def turn(self, asset: str, back: bool) -> None:
        pager: Pager = self.statements[asset]["pager"]
        if pager.back() if back else pager.forward():
            await self.load_statement(asset)

    async def load_statement(self, asset: str) -> None:
        t, parts = self.t, self.statements[asset]
        pager: Pager = parts["pager"]
        answer = await attempt(lambda: self.api.call("LedgerService.ListEntries",
                                                     statement_request(self.member_id, asset, pager.token)))
        if answer is None:
            return
        pager.got(answer.get("next_page_token", ""))
        parts["table"].rows = [{
            "entry_id": e.get("entry_id"), "time": when(e.get("create_time")), "kind": t.enum("entry", e.get("kind")),
            "amount": ("+" if int(e.get("amount", 0)) > 0 else "") + amount_text(asset, e.get("amount")),
            "balance": amount_text(asset, e.get("balance_after")), "reason": e.get("reason") or "—",
            "note": e.get("note") or "—", "mall": self.mall(e.get("mall_id")), "operator": e.get("operator_id", ""),
            **voucher_cell(t, e.get("voucher") or ""),
        } for e in answer.get("entries", [])]
        parts["table"].update()
        parts["previous"].enabled = pager.index > 0
        parts["next"].enabled = bool(pager.next_token)

    async def open_voucher(self, reference: str) -> None:
        """Hands the browser a stored 变动凭证 (GetVoucherFile) under its own name."""
        file_id = reference.removeprefix(VOUCHER_PREFIX)
        answer = await attempt(lambda: self.api.call("LedgerService.GetVoucherFile", {"file_id": file_id}))
        if answer is not None:
            stored = answer.get("file") or {}
            ui.download.content(base64.b64decode(answer.get("content", "")), stored.get("file_name") or "voucher",
                                stored.get("content_type") or "application/octet-stream")

    async def adjust_dialog(self, asset: str) -> None:
        t = self.t
        form = Form(t)
        templates = await attempt(lambda: self.api.call("LedgerService.ListReasonTemplates", {"page_size": 1000}))
        reasons = {r["reason_template_id"]: r["name"] for r in (templates or {}).get("reason_templates", [])
                   if r.get("asset", "ASSET_UNSPECIFIED") in ("ASSET_UNSPECIFIED", asset)}
        money = asset != "ASSET_POINTS"
        with ui.dialog() as dialog, ui.card().classes("w-[32rem] max-w-full"):
            ui.label(t("adjust.title", asset=t.enum("asset", asset))).classes("text-lg font-medium")
            direction = form.add("direction", ui.toggle({"DIRECTION_INCREASE": t("adjust.increase"),
                                                         "DIRECTION_DECREASE": t("adjust.decrease")},
                                                        value="DIRECTION_INCREASE"))
            value = form.add("value", ui.input(t("adjust.value_yuan") if money else t("adjust.value_points"))
                             .classes("w-full"))
            reason = form.add("reason_template_id", ui.select(reasons, label=t("adjust.reason")).classes("w-full"))
            description = form.add("description", ui.textarea(t("adjust.description")).classes("w-full")
                                   .props("autogrow maxlength=500"))
            voucher = form.add("voucher", ui.input(t("adjust.voucher"), placeholder=t("adjust.voucher_hint"))
                               .classes("w-full").props('data-testid="voucher"'))

            async def voucher_uploaded(event: Any) -> None:
                upload = event.file
                data = await upload.read()
                try:
                    answer = await self.api.upload("LedgerService.UploadVoucherFile", data, upload.name,
                                                   {"member_id": self.member_id})
                except ApiError as err:
                    event.sender.reset()
                    form.show(ApiError(err.status, err.code, err.message, "voucher"))
                    return
                voucher.value = (answer.get("file") or {}).get("reference", "")
                voucher.props(remove="error error-message")

            ui.upload(label=t("adjust.voucher_upload"), auto_upload=True, max_file_size=VOUCHER_MAX_BYTES,
                      on_upload=voucher_uploaded).props('accept=".jpg,.jpeg,.png,.pdf" flat bordered').classes(
                          "w-full")
            document_time = form.add("document_time", ui.input(t("adjust.document_time"),
                                                               placeholder="2026-01-31 18:30").classes("w-full"))
            mall = form.add("mall_id", ui.select(self.choices.malls, label=t("adjust.mall"),
                                                 value=next(iter(self.choices.malls), None)).classes("w-full"))
            store = form.add("store_id", ui.select(self.choices.stores, label=t("adjust.store"), clearable=True)
                             .classes("w-full"))
            form.error_banner()

            async def save() -> None:
                form.clear()
                try:
                    amount = fen_from_yuan(value.value) if money else int(str(value.value or "").strip() or "0")
                except ValueError:
                    form.show(ApiError(400, "INVALID_ARGUMENT", t("adjust.bad_value"), "value"))
                    return
                request: dict[str, Any] = {
                    "request_id": uuid.uuid4().hex, "member_id": self.member_id, "asset": asset,
                    "direction": direction.value, "value": amount, "reason_template_id": reason.value or "",
                    "description": description.value or "", "voucher": voucher.value or "",
                    "mall_id": mall.value or "", "store_id": store.value or ""}
                if (document_time.value or "").strip():
                    try:
                        moment = datetime.fromisoformat(document_time.value.strip()).replace(tzinfo=DISPLAY_ZONE)
                    except ValueError:
                        form.show(ApiError(400, "INVALID_ARGUMENT", t("adjust.bad_time"), "document_time"))
                        return
                    request["document_time"] = moment.isoformat()
                if await form.submit(lambda: self.api.call("LedgerService.AdjustBalance", request)) is not None:
                    dialog.close()
                    ui.notify(t("adjust.done"), type="positive")
                    await self.load_balances()
                    self.statements[asset]["pager"].reset()
                    await self.load_statement(asset)

            dialog_actions(t, dialog, save)
        dialog.open()

    # -- level changes ----------------------------------------------------------------------------
    async def level_changes(self) -> None:
        t = self.t
        with ui.row().classes("w-full justify-end"):
            ui.button(t("level.download_records"), icon="download", on_click=self.download_levels).props("outline")
        await self.level_table()

    @ui.refreshable_method
    async def level_table(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("LevelService.ListLevelChanges", {
            "member_id": self.member_id, "page_size": 100}))
        rows = [{"change_id": c["change_id"], "time": when(c.get("create_time")),
                 "from": self.level_name(int(c.get("from_level") or 0)),
                 "to": self.level_name(int(c.get("to_level") or 0)), "kind": t.enum("level_kind", c.get("kind")),
                 "reason": c.get("reason") or "—", "operator": c.get("operator_id", "")}
                for c in (answer or {}).get("changes", [])]
        columns = [{"name": k, "label": t(f"level.col.{k}"), "field": k, "align": "left"}
                   for k in ("time", "from", "to", "kind", "reason", "operator")]
        ui.table(columns=columns, rows=rows, row_key="change_id").classes("w-full").props(
            table_labels(t)).props(f'aria-label="{t("member.tab.levels")}"')

    async def download_levels(self) -> None:
        t = self.t
        notice = ui.notification(t("common.downloading"), spinner=True, timeout=None)
        answer = await attempt(lambda: self.api.call("LevelService.ExportLevelChanges", {"member_id": self.member_id}))
        notice.dismiss()
        if answer is not None:
            download_csv(answer, f"level-changes-{self.member_id}.csv")

    # -- consumption and timeline -----------------------------------------------------------------
    async def consumption(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("LedgerService.GetConsumptionSummary",
                                                     {"member_id": self.member_id}))
        totals = (answer or {}).get("totals") or {}
        with ui.row().classes("w-full gap-6"):
            fact(t("consumption.count"), str(int(totals.get("order_count") or 0)), "consumption-count")
            fact(t("consumption.total"), yuan(totals.get("total_amount")), "consumption-total")
            fact(t("consumption.paid"), yuan(totals.get("total_paid_amount")))
            fact(t("consumption.first"), when(totals.get("first_order_time")))
            fact(t("consumption.last"), when(totals.get("last_order_time")))
        stats = self.member.get("stats") or {}
        with ui.row().classes("w-full gap-6"):  # 线下消费 and 线上下单 apart (document 001)
            for side in ("offline", "online"):
                fact(t(f"consumption.{side}_count"), str(int(stats.get(f"{side}_count") or 0)), f"{side}-count")
                fact(t(f"consumption.{side}_total"), yuan(stats.get(f"{side}_total_fen")), f"{side}-total")
                fact(t(f"consumption.{side}_last"), when(stats.get(f"{side}_last_time")))
        rows = []
        for mall in (answer or {}).get("malls", []):
            for store in mall.get("stores", []):
                st = store.get("totals") or {}
                rows.append({"key": f"{mall['mall_id']}/{store['store_id']}", "mall": self.mall(mall["mall_id"]),
                             "store": self.choices.stores.get(store["store_id"], store["store_id"]),
                             "count": int(st.get("order_count") or 0), "total": yuan(st.get("total_amount")),
                             "last": when(st.get("last_order_time"))})
        columns = [{"name": k, "label": t(f"consumption.col.{k}"), "field": k, "align": "left"}
                   for k in ("mall", "store", "count", "total", "last")]
        ui.table(columns=columns, rows=rows, row_key="key").classes("w-full").props(table_labels(t)).props(
            f'aria-label="{t("consumption.stores")}"')
        await MemberOrders(t, self.api, self.member_id, self.choices).build()

    async def timeline(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("MemberService.ListTimeline", {
            "customer_id": self.member_id, "page_size": 100}))
        entries = (answer or {}).get("entries", [])
        if not entries:
            ui.label(t("table.empty"))
            return
        with ui.timeline(side="right").classes("w-full"):
            for entry in entries:
                try:
                    detail = json.loads(entry.get("detail_json") or "{}")
                except ValueError:
                    detail = {}
                body = "；".join(f"{k}: {v}" for k, v in detail.items()) if isinstance(detail, dict) else ""
                ui.timeline_entry(body, title=t.enum("timeline", entry.get("kind")),
                                  subtitle=f"{when(entry.get('create_time'))} · {entry.get('actor_id', '')}")
