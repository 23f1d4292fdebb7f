"""Validation of business customer archive fields: each rule names the field it guards.

``archive_values`` turns the named fields of a create request or a BusinessCustomer
message into column values, raising INVALID_ARGUMENT for the first bad one.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from google.protobuf.message import Message

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.common.clock import utcnow
from services.common.errors import InvalidArgument
from services.common.validation import MAX_MONEY, aware, bounded_text, known_enum, name_text, parse_int_id
from services.customer.validation import normalize_email, normalize_phone, url

# Text fields and their longest length.
TEXT_FIELDS = {"short_name": 50, "industry": 50, "scale": 50, "address": 300, "payment_terms": 100, "source": 50}
MONEY_FIELDS = ("credit_limit_fen", "annual_revenue_fen")
MAX_PAYMENT_DAYS = 3650
MAX_COOPERATION_YEARS = 200
# Clocks differ a little; a follow-up "now" from another machine may be slightly ahead.
CLOCK_SKEW = timedelta(minutes=5)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Fields on the ``customer`` row; the rest live on ``business_profile``.
CUSTOMER_COLUMNS = frozenset({"name", "phone", "email", "group_id"})
PROFILE_COLUMNS = frozenset({"short_name", "type", "industry", "scale", "address", "website", "founded_date",
                             "credit_limit_fen", "payment_terms", "payment_days", "source", "status",
                             "annual_revenue_fen", "cooperation_years", "last_follow_up_at"})
ARCHIVE_FIELDS = frozenset({*CUSTOMER_COLUMNS, *(PROFILE_COLUMNS - {"last_follow_up_at"}), "last_follow_up_time"})
# UpdateBusinessCustomer's update_mask may name these.
UPDATABLE = ARCHIVE_FIELDS


def required_text(value: str, field: str, maximum: int) -> str:
    value = name_text(value, field, maximum)
    if not value:
        raise InvalidArgument("is required", field=field)
    return value


def parse_date(value: str, field: str) -> date | None:
    """A "YYYY-MM-DD" date not in the future, or None when empty."""
    value = value.strip()
    if not value:
        return None
    try:
        if not DATE.match(value):
            raise ValueError(value)
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("must be a date as YYYY-MM-DD", field=field) from None
    if parsed > date.today():
        raise InvalidArgument("must not be in the future", field=field)
    return parsed


def bounded_int(value: int, field: str, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument("must not be negative", field=field)
    if value > maximum:
        raise InvalidArgument(f"must be at most {maximum}", field=field)
    return value


def past_time(source: Message, field: str, path: str) -> datetime | None:
    if not source.HasField(path):
        return None
    ts = getattr(source, path)
    try:
        value = aware(ts.ToDatetime())
    except (ValueError, OverflowError):
        raise InvalidArgument("is not a valid time", field=field) from None
    if value > utcnow() + CLOCK_SKEW:
        raise InvalidArgument("must not be in the future", field=field)
    return value


def group_ref(value: str, field: str) -> int | None:
    """A group id; empty or "default" is the default group (None)."""
    value = value.strip()
    return parse_int_id(value, field) if value and value != "default" else None


def archive_values(source: Message, paths: set[str], prefix: str = "", *, creating: bool = False) -> dict[str, Any]:
    """Validated column values for the named archive fields of ``source``."""
    values: dict[str, Any] = {}
    for path in sorted(paths):
        field = prefix + path
        if path == "last_follow_up_time":
            values["last_follow_up_at"] = past_time(source, field, path)
            continue
        raw = getattr(source, path)
        if path == "name":
            values["name"] = required_text(raw, field, 100)
        elif path in TEXT_FIELDS:
            values[path] = bounded_text(raw, field, TEXT_FIELDS[path])
        elif path == "website":
            values["website"] = url(raw, field)
        elif path == "type":
            values["type"] = known_enum(pb.BusinessCustomerType, raw, field)
        elif path == "status":
            if creating and raw == pb.BUSINESS_CUSTOMER_STATUS_UNSPECIFIED:
                values["status"] = pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL
            else:
                values["status"] = known_enum(pb.BusinessCustomerStatus, raw, field, allow_unspecified=False)
        elif path == "founded_date":
            values["founded_date"] = parse_date(raw, field)
        elif path in MONEY_FIELDS:
            values[path] = bounded_int(raw, field, MAX_MONEY)
        elif path == "payment_days":
            values["payment_days"] = bounded_int(raw, field, MAX_PAYMENT_DAYS)
        elif path == "cooperation_years":
            values["cooperation_years"] = bounded_int(raw, field, MAX_COOPERATION_YEARS)
        elif path == "phone":
            values["phone"] = normalize_phone(raw, field)
        elif path == "email":
            values["email"] = normalize_email(raw, field)
        elif path == "group_id":
            values["group_id"] = group_ref(raw, field)
        else:  # pragma: no cover - the path sets above are the contract
            raise InvalidArgument("cannot be set", field=field)
    return values


def enum_label(enum: Any, value: int) -> str:
    """``BUSINESS_CUSTOMER_STATUS_DEAL`` -> ``deal``: how the timeline shows enum values."""
    if not value:
        return ""
    name = enum.Name(value)
    prefix = "".join("_" + c if c.isupper() else c.upper() for c in enum.DESCRIPTOR.name).lstrip("_") + "_"
    return name.removeprefix(prefix).lower()


def timeline_value(column: str, value: Any) -> Any:
    """A column value as the timeline records it (JSON: dates and times ISO 8601, enums by label)."""
    if column == "group_id":
        return "default" if value is None else str(value)
    if value is None:
        return None
    if column == "status":
        return enum_label(pb.BusinessCustomerStatus, value)
    if column == "type":
        return enum_label(pb.BusinessCustomerType, value)
    if column == "grade":
        return enum_label(pb.BusinessCustomerGrade, value).upper()
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
