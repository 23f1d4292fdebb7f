"""AIP-158 list paging: ``page_size`` with a default and a cap, and an opaque ``page_token``.

Lists are keyset-paged: a page reads one row more than it shows (``keyset_page``), and the token
names where the next page starts (the last row's sort key), never an offset.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.common.errors import InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if value < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    return min(value or default, maximum)


def encode_token(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("is not a token this list returned", field="page_token") from None
    if not isinstance(cursor, dict):
        raise InvalidArgument("is not a token this list returned", field="page_token")
    return cursor


def after_token(after: int) -> str:
    """The token of a list paged by a position or id: the next page starts after ``after``."""
    return encode_token({"after": after})


def after_id(token: str) -> int:
    """The position or id an ``after_token`` names; 0 (the start) for an empty token."""
    cursor = decode_token(token)
    if cursor is None:
        return 0
    value = cursor.get("after")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument("is not a token this list returned", field="page_token")
    return value


def before_id(token: str) -> int | None:
    """The id a newest-first list's ``{"before": id}`` token names; None (the start) for an empty token."""
    cursor = decode_token(token)
    if cursor is None:
        return None
    value = cursor.get("before")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument("is not a token this list returned", field="page_token")
    return value


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and whether another follows."""

    items: list[T]
    more: bool

    def next_token(self, cursor: Callable[[T], dict[str, Any]]) -> str:
        """The token of the next page, from the cursor of this page's last item; empty on the last page."""
        return encode_token(cursor(self.items[-1])) if self.more else ""


async def keyset_page(fetch: Callable[[int], Awaitable[Sequence[T]]], limit: int) -> Page[T]:
    """A page of at most ``limit`` items: ``fetch(n)`` reads up to n rows from the cursor on, in list order.

    It is asked for one row more than the page holds: that row's presence says another page follows.
    """
    return page_of(await fetch(limit + 1), limit)


def page_of(rows: Sequence[T], limit: int) -> Page[T]:
    """The page of ``rows`` read with one row more than the page holds (``keyset_page`` for a synchronous read)."""
    return Page(list(rows[:limit]), len(rows) > limit)
