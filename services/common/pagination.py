"""AIP-158 list paging: ``page_size`` with a default and a cap, and an opaque ``page_token``."""

from __future__ import annotations

import base64
import json
from typing import Any

from services.common.errors import InvalidArgument

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
