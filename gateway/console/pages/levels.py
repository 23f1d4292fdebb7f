"""Customer levels (documents 000 and 001): at most ten, each with its discount and upgrade rule."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.layout import PAGE_TIMEOUT_S, Page, frame, open_page
from gateway.console.widgets import Form, attempt, dialog_actions, fen_from_yuan, table_labels, yuan, yuan_text

MODES = ("UPGRADE_MODE_MANUAL", "UPGRADE_MODE_AUTOMATIC")


@ui.page("/levels", response_timeout=PAGE_TIMEOUT_S)
async def levels_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "levels.title"):
        ui.label(t("levels.hint")).classes("text-sm text-grey-8")
        view = LevelsView(page)
        ui.button(t("levels.add"), icon="add", on_click=lambda: view.dialog(None))
        await view.table()
    return None


class LevelsView:
    def __init__(self, page: Page) -> None:
        self.page, self.t, self.api = page, page.t, page.api
        self.levels: list[dict[str, Any]] = []

    @ui.refreshable_method
    async def table(self) -> None:
        t = self.t
        answer = await attempt(lambda: self.api.call("LevelService.ListLevels", {}))
        self.levels = (answer or {}).get("levels", [])
        rows = [{"number": lv["number"], "name": lv.get("name", ""),
                 "discount": t("levels.discount_value", n=f"{int(lv.get('discount_permille') or 1000) / 100:g}"),
                 "mode": t.enum("upgrade_mode", lv.get("upgrade_mode")),
                 "upgrade": yuan(lv.get("upgrade_spend_fen")) if lv.get("upgrade_mode") == MODES[1] else "—",
                 "validity": t("levels.months", n=lv["validity_months"]) if lv.get("validity_months") else
                 t("levels.forever"), "members": int(lv.get("member_count") or 0)} for lv in self.levels]
        columns = [{"name": k, "label": t(f"levels.col.{k}"), "field": k, "align": "left"}
                   for k in ("number", "name", "discount", "mode", "upgrade", "validity", "members")]
        columns.append({"name": "actions", "label": t("crowds.col.actions"), "field": "number", "align": "left"})
        table = ui.table(columns=columns, rows=rows, row_key="number").classes("w-full").props(table_labels(t)).props(
            f'aria-label="{t("levels.title")}"')
        table.add_slot("body-cell-actions", f'''
            <q-td :props="props">
              <q-btn flat dense no-caps color="primary" label="{t('crowds.edit')}"
                     @click="() => $parent.$emit('edit', props.row)" />
              <q-btn flat dense no-caps color="negative" label="{t('common.delete')}"
                     @click="() => $parent.$emit('delete', props.row)" />
            </q-td>''')
        table.on("edit", lambda e: self.dialog(next(lv for lv in self.levels if lv["number"] == e.args["number"])))
        table.on("delete", lambda e: self.delete(e.args["number"]))

    async def delete(self, number: int) -> None:
        if await attempt(lambda: self.api.call("LevelService.DeleteLevel", {
                "request_id": uuid.uuid4().hex, "number": number})) is not None:
            self.table.refresh()

    def dialog(self, level: dict[str, Any] | None) -> None:
        t = self.t
        form = Form(t)
        level = level or {}
        taken = {lv["number"] for lv in self.levels}
        free = [n for n in range(1, 11) if n not in taken or n == level.get("number")]
        with ui.dialog() as dialog, ui.card().classes("w-[28rem] max-w-full"):
            ui.label(t("levels.edit") if level else t("levels.add")).classes("text-lg font-medium")
            number = form.add("number", ui.select(free, label=t("levels.col.number"),
                                                  value=level.get("number") or (free[0] if free else None))
                              .classes("w-full").props("disable" if level else ""))
            name = form.add("name", ui.input(t("levels.col.name"), value=level.get("name", "")).classes("w-full"))
            discount = form.add("discount_permille", ui.number(t("levels.discount"), min=0.1, max=10, step=0.1,
                                value=int(level.get("discount_permille") or 1000) / 100).classes("w-full"))
            mode = form.add("upgrade_mode", ui.toggle({m: t.enum("upgrade_mode", m) for m in MODES},
                                                      value=level.get("upgrade_mode") or MODES[0]))
            upgrade = form.add("upgrade_spend_fen", ui.input(t("levels.upgrade_spend"),
                               value=yuan_text(int(level.get("upgrade_spend_fen") or 0))).classes("w-full"))
            validity = form.add("validity_months", ui.number(t("levels.validity"), min=0, precision=0,
                                value=int(level.get("validity_months") or 0)).classes("w-full"))
            retain = form.add("retain_spend_fen", ui.input(t("levels.retain_spend"),
                              value=yuan_text(int(level.get("retain_spend_fen") or 0))).classes("w-full"))
            form.error_banner()

            async def save() -> None:
                form.clear()
                try:
                    upgrade_fen, retain_fen = fen_from_yuan(upgrade.value), fen_from_yuan(retain.value)
                except ValueError:
                    form.show(ApiError(400, "INVALID_ARGUMENT", t("adjust.bad_value"), "upgrade_spend_fen"))
                    return
                body = {"number": number.value, "name": name.value or "",
                        "discount_permille": round(float(discount.value or 10) * 100),
                        "upgrade_mode": mode.value, "upgrade_spend_fen": upgrade_fen,
                        "validity_months": int(validity.value or 0), "retain_spend_fen": retain_fen}
                if level:
                    request = {"request_id": uuid.uuid4().hex, "level": body, "update_mask":
                               "name,discountPermille,upgradeMode,upgradeSpendFen,validityMonths,retainSpendFen"}
                    rpc = "LevelService.UpdateLevel"
                else:
                    request, rpc = {"request_id": uuid.uuid4().hex, "level": body}, "LevelService.CreateLevel"
                if await form.submit(lambda: self.api.call(rpc, request)) is not None:
                    dialog.close()
                    self.table.refresh()

            dialog_actions(t, dialog, save)
        dialog.open()
