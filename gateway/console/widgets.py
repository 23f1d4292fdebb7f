"""Small pieces the pages share: showing API errors beside their fields, formatting, downloads, paging."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from nicegui import ui

from gateway.console.api import ApiError
from gateway.console.i18n import Labels

DISPLAY_ZONE = ZoneInfo("Asia/Shanghai")


class Form:
    """Inputs by the request field they fill, so an API error can sit beside its field."""

    def __init__(self, t: Labels) -> None:
        self.t = t
        self.fields: dict[str, ui.element] = {}
        self.banner: ui.label | None = None

    def add(self, field: str, element: ui.element) -> Any:
        self.fields[field] = element
        return element

    def clear(self) -> None:
        for element in self.fields.values():
            element.props(remove="error error-message")
        if self.banner is not None:
            self.banner.set_text("")
            self.banner.visible = False

    def show(self, err: ApiError) -> None:
        """The error beside the field it names (or its nearest named parent); else above the form."""
        element = self._element_for(err.field)
        if element is not None:
            element._props["error"] = True
            element._props["error-message"] = err.message
            element.update()
            return
        if self.banner is not None:
            self.banner.set_text(err.message)
            self.banner.visible = True
        else:
            ui.notify(err.message, type="negative")

    def _element_for(self, field: str | None) -> ui.element | None:
        while field:
            if field in self.fields:
                return self.fields[field]
            tail = field.rsplit(".", 1)[-1]
            if tail in self.fields:
                return self.fields[tail]
            field = field.rsplit(".", 1)[0] if "." in field else ""
        return None

    def error_banner(self) -> ui.label:
        self.banner = ui.label("").classes("text-negative").props('role="alert"')
        self.banner.visible = False
        return self.banner

    async def submit(self, action: Callable[[], Awaitable[Any]]) -> Any | None:
        """Runs ``action``; an API error shows beside its field and returns None."""
        self.clear()
        try:
            return await action()
        except ApiError as err:
            self.show(err)
            return None


def dialog_actions(t: Labels, dialog: ui.dialog, confirm: Callable[[], Awaitable[Any]],
                   confirm_props: str = "") -> None:
    """A dialog's closing row: cancel (closes it) and confirm (runs ``confirm``), at the right."""
    with ui.row().classes("w-full justify-end"):
        ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
        ui.button(t("common.confirm"), on_click=confirm).props(confirm_props)


async def attempt(action: Callable[[], Awaitable[Any]]) -> Any | None:
    """Runs ``action``; an API error shows as one line of notification and returns None."""
    try:
        return await action()
    except ApiError as err:
        ui.notify(err.message, type="negative", multi_line=True)
        return None


def yuan(fen: int | str | None) -> str:
    value = int(fen or 0)
    sign = "-" if value < 0 else ""
    whole, cents = divmod(abs(value), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def yuan_text(fen: int) -> str:
    """Fen as yuan for an input box (``1250`` -> ``12.50``), exactly."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole}.{cents:02d}"


def points(value: int | str | None) -> str:
    return f"{int(value or 0):,}"


def when(stamp: str | None, with_seconds: bool = True) -> str:
    """An RFC 3339 time from the API as Beijing local time."""
    if not stamp:
        return "—"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone(DISPLAY_ZONE).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d")


def fen_from_yuan(text: str | float | None) -> int:
    """Yuan typed by a person (``12.5``) as int fen, exactly (no float arithmetic)."""
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(str(text).strip() or "0")
    except InvalidOperation:
        raise ValueError(text) from None
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError(text)
    return int(fen)


def download_csv(answer: dict[str, Any], filename: str) -> int:
    """Hands the browser the ``csv`` of an export answer (bytes, or base64 in JSON); returns the row count."""
    raw = answer.get("csv", b"") or b""
    data = raw if isinstance(raw, bytes) else base64.b64decode(raw)
    ui.download.content(data, filename, "text/csv")
    return int(answer.get("row_count", 0) or 0)


class Pager:
    """Token paging with page numbers: remembers the token of every page seen."""

    def __init__(self) -> None:
        self.tokens: list[str] = [""]
        self.index = 0
        self.next_token = ""

    @property
    def token(self) -> str:
        return self.tokens[self.index]

    def reset(self) -> None:
        self.tokens, self.index, self.next_token = [""], 0, ""

    def got(self, next_token: str) -> None:
        self.next_token = next_token
        if next_token and len(self.tokens) == self.index + 1:
            self.tokens.append(next_token)

    def forward(self) -> bool:
        if not self.next_token:
            return False
        self.index += 1
        return True

    def back(self) -> bool:
        if self.index == 0:
            return False
        self.index -= 1
        return True


def table_labels(t: Labels) -> str:
    """Quasar table props in the page's language."""
    return f'no-data-label="{t("table.empty")}" loading-label="{t("table.loading")}" flat bordered'
