"""Sign-in: staff name and password, sent by the page's script to /console/session, which sets the cookie."""

from __future__ import annotations

import json

from fastapi import Request
from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.i18n import Labels
from gateway.console.layout import PAGE_TIMEOUT_S, language_switch
from gateway.console.session import language_of
from gateway.console.widgets import Form


@ui.page("/sign-in", response_timeout=PAGE_TIMEOUT_S)
def sign_in_page(request: Request) -> None:
    t = Labels(language_of(request))
    ui.page_title(f"{t('sign_in.title')} · {t('app.name')}")
    ui.query("body").classes("bg-grey-2")
    with ui.header().classes("items-center justify-between px-4 py-2 bg-primary"):
        ui.label(t("app.name")).classes("text-lg font-medium")
        language_switch(t, "/sign-in")
    form = Form(t)
    with ui.card().classes("absolute-center w-96 max-w-full"):
        ui.label(t("sign_in.title")).classes("text-xl font-medium").props('role="heading" aria-level="1"')
        username = form.add("login", ui.input(t("sign_in.username")).props("autofocus autocomplete=username")
                            .classes("w-full"))
        password = form.add("password", ui.input(t("sign_in.password"), password=True)
                            .props("autocomplete=current-password").classes("w-full"))
        form.error_banner()

        async def submit() -> None:
            form.clear()
            if not (username.value or "").strip():
                form.show(ApiError(400, "INVALID_ARGUMENT", t("sign_in.username_required"), "login"))
                return
            payload = json.dumps({"username": username.value, "password": password.value or ""})
            answer = await ui.run_javascript(
                "const r = await fetch('/console/session', {method: 'POST', credentials: 'same-origin', "
                f"headers: {{'content-type': 'application/json'}}, body: {json.dumps(payload)}}});"
                "return {status: r.status, body: await r.json().catch(() => ({}))};", timeout=30)
            if answer.get("status") == 200:
                ui.navigate.to("/")
                return
            error = (answer.get("body") or {}).get("error") or {}
            status = int(answer.get("status") or 0)
            if status == 401:
                form.show(ApiError(status, str(error.get("code", "")), t("sign_in.failed")))
                return
            form.show(ApiError(status, str(error.get("code", "")), str(error.get("message") or t("sign_in.failed")),
                               error.get("field") or None, str(error.get("reason") or "")).in_language(t))

        ui.button(t("sign_in.submit"), on_click=submit).classes("w-full")
        password.on("keydown.enter", submit)
