"""What every signed-in page shares: who is signed in, the labels, the API, the frame and navigation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from gateway.console.i18n import LANGUAGES, Labels
from gateway.console.session import COOKIE, Session, SessionApi, Sessions, language_of

# A page is built after its API calls answer; allow for a slow first answer (NiceGUI's default is 3 s).
PAGE_TIMEOUT_S = 20.0


class Console:
    """The process's console state, set once when the console is mounted."""

    sessions: Sessions | None = None


@dataclass
class Page:
    """One page load: the person, their labels and their API."""

    request: Request
    session: Session
    t: Labels
    api: SessionApi

    @property
    def super_admin(self) -> bool:
        return self.session.super_admin


def open_page(request: Request) -> Page | RedirectResponse:
    """The signed-in page context, or a redirect to the sign-in page."""
    sessions = Console.sessions
    assert sessions is not None, "the console is not mounted"
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return RedirectResponse("/sign-in", status_code=303)
    t = Labels(language_of(request))
    return Page(request, session, t, sessions.api(session, t))


NAV: tuple[tuple[str, str, str], ...] = (
    # (label key, icon, path)
    ("nav.dashboard", "dashboard", "/"),
    ("nav.members", "people", "/members"),
    ("nav.import", "upload_file", "/import"),
    ("nav.crowds", "groups", "/crowds"),
    ("nav.levels", "military_tech", "/levels"),
    ("nav.groups", "folder_shared", "/groups"),
    ("nav.tags", "sell", "/tags"),
    ("nav.virtual", "face", "/virtual-customers"),
    ("nav.settings", "tune", "/settings"),
    ("nav.business", "business", "/business-customers"),
    ("nav.alerts", "warning", "/alerts"),
    ("nav.organisation", "store", "/organisation"),
)


def language_switch(t: Labels, path: str) -> None:
    other = next(lang for lang in LANGUAGES if lang != t.lang)
    ui.link(t("lang.switch"), f"/console/language/{other}?back={path}").classes(
        "text-white no-underline text-sm").props(f'lang="{other}"')


@contextmanager
def frame(page: Page, title_key: str, **title_values: str) -> Iterator[None]:
    """Header, navigation drawer and the content column; yields inside the content column."""
    t = page.t
    path = page.request.url.path
    ui.page_title(f"{t(title_key, **title_values)} · {t('app.name')}")
    ui.query("body").classes("bg-grey-1")
    with ui.header().classes("items-center justify-between px-4 py-2 bg-primary"):
        with ui.row().classes("items-center gap-3"):
            ui.label(t("app.name")).classes("text-lg font-medium")
        with ui.row().classes("items-center gap-4"):
            language_switch(t, path)
            ui.label(t("header.signed_in_as", name=page.session.name or page.session.staff_id)).classes("text-sm")
            ui.button(t("header.sign_out"), on_click=sign_out).props("flat dense color=white no-caps")
    with ui.left_drawer(value=True, fixed=True).props("width=200 bordered").classes("bg-white p-0"):
        with ui.list().props("dense").classes("w-full"):
            for key, icon, target in NAV:
                active = target == path or (target != "/" and path.startswith(target + "/"))
                with ui.item(on_click=lambda target=target: ui.navigate.to(target)).props(
                        f"clickable {'active' if active else ''} active-class=bg-blue-1").classes("w-full"):
                    with ui.item_section().props("avatar"):
                        ui.icon(icon, size="xs")
                    with ui.item_section():
                        ui.item_label(t(key))
    with ui.column().classes("w-full max-w-full gap-4 p-4"):
        ui.label(t(title_key, **title_values)).classes("text-xl font-medium").props('role="heading" aria-level="1"')
        yield


async def sign_out() -> None:
    await ui.run_javascript("fetch('/console/sign-out', {method: 'POST', credentials: 'same-origin'})"
                            ".then(() => { window.location.href = '/sign-in'; })", timeout=10)


def js_string(value: str) -> str:
    return json.dumps(value)
