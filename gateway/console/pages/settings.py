"""Customer settings (document 000): the member options of the tenant, submitted together."""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.layout import PAGE_TIMEOUT_S, frame, open_page
from gateway.console.widgets import Form, attempt

OPTIONS = ("phone_authorization", "show_user_id", "show_level", "review_required", "hide_prices_until_approved",
           "base_level_may_order")


@ui.page("/settings", response_timeout=PAGE_TIMEOUT_S)
async def settings_page(request: Request) -> RedirectResponse | None:
    page = open_page(request)
    if isinstance(page, RedirectResponse):
        return page
    t = page.t
    with frame(page, "settings.title"):
        answer = await attempt(lambda: page.api.call("SettingsService.GetTenantSettings", {}))
        settings = (answer or {}).get("settings", {})
        form = Form(t)
        with ui.card().classes("w-full max-w-3xl"):
            switches = {}
            for option in OPTIONS:
                with ui.row().classes("w-full items-center justify-between no-wrap"):
                    with ui.column().classes("gap-0"):
                        ui.label(t(f"settings.{option}"))
                        ui.label(t(f"settings.{option}.hint")).classes("text-xs text-grey-7")
                    switches[option] = form.add(option, ui.switch(value=bool(settings.get(option))).props(
                        f'aria-label="{t(f"settings.{option}")}"'))
            form.error_banner()

            async def submit() -> None:
                values = {option: bool(switch.value) for option, switch in switches.items()}
                if await form.submit(lambda: page.api.call("SettingsService.UpdateTenantSettings", {
                        "request_id": uuid.uuid4().hex, "settings": values,
                        "update_mask": ",".join(_camel(o) for o in OPTIONS)})) is not None:
                    ui.notify(t("common.saved"), type="positive")

            ui.button(t("settings.submit"), on_click=submit)
    return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
