"""Validation of member identity fields: each rule names the field it guards."""

from __future__ import annotations

import re
from datetime import date

from services.common.errors import InvalidArgument
from services.common.validation import bounded_text, mainland_mobile

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def normalize_phone(phone: str, field: str = "phone") -> str | None:
    """An 11-digit mainland mobile number, or None when empty."""
    return mainland_mobile(phone, field)


def normalize_email(email: str, field: str = "email") -> str | None:
    """A lower-cased valid email, or None when empty."""
    email = email.strip()
    if not email:
        return None
    if len(email) > 254 or not EMAIL.match(email):
        raise InvalidArgument("must be a valid email address", field=field)
    return email.lower()


def parse_birthday(value: str, field: str = "birthday") -> date | None:
    """A past "YYYY-MM-DD" date, or None when empty."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("must be a date as YYYY-MM-DD", field=field) from None
    if parsed > date.today() or parsed.year < 1900:
        raise InvalidArgument("must be a date between 1900 and today", field=field)
    return parsed


def url(value: str, field: str, maximum: int = 500) -> str:
    """An http(s) URL, or empty."""
    value = bounded_text(value, field, maximum)
    if value and not URL.match(value):
        raise InvalidArgument("must be an http:// or https:// URL", field=field)
    return value
