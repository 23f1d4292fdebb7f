"""Small validation and conversion helpers every servicer uses."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import InvalidArgument

E = TypeVar("E", bound=int)
MAX_MONEY = 9 * 10**15
MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def known_enum(enum: EnumTypeWrapper, value: int, field: str, *, allow_unspecified: bool = True) -> int:
    """``value`` if the enum defines it (and, unless allowed, it is not the zero value)."""
    # The descriptor's table of numbers: ``enum.values()`` builds a list on every call.
    if value not in enum.DESCRIPTOR.values_by_number or (value == 0 and not allow_unspecified):
        names = ", ".join(n for n in enum.keys() if not n.endswith("_UNSPECIFIED"))  # noqa: SIM118 - not a dict
        raise InvalidArgument(f"must be one of {names}", field=field)
    return value


def enum_of(enum: type[E], value: int) -> E:
    """``value``, a number of proto enum ``enum`` (stored in a row or decided here), typed for a message field.

    protoc's stubs type an enum field as the enum's class, which the generated module never instantiates:
    its numbers are plain ints. Nothing is checked; the number came from the enum.
    """
    return cast(E, value)


def parse_int_id(value: str, field: str) -> int:
    """A numeric id given as a string."""
    if not value:
        raise InvalidArgument("is required", field=field)
    if not value.isdigit() or len(value) > 18:
        raise InvalidArgument("must be a numeric id", field=field)
    return int(value)


def optional_id(value: str, field: str) -> int | None:
    """A numeric id given as a string, or None when empty."""
    return parse_int_id(value, field) if value else None


MAX_TEXT = 500


# Tab, newline and carriage return may appear in a free text (a note, a description); no other control character may.
TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")


def control_character(value: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control character (Unicode category Cc: NUL, escape, DEL, ...) of ``value`` not in ``allowed``."""
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in allowed:
            return char
    return None


def bounded_text(value: str, field: str, maximum: int = MAX_TEXT) -> str:
    """``value`` without surrounding spaces, at most ``maximum`` characters, no control character but tab and
    line breaks."""
    value = value.strip()
    if len(value) > maximum:
        raise InvalidArgument(f"must be at most {maximum} characters", field=field)
    bad = control_character(value, TEXT_CONTROLS_ALLOWED)
    if bad is not None:
        raise InvalidArgument(f"must not contain the control character U+{ord(bad):04X}", field=field)
    return value


def name_text(value: str, field: str, maximum: int = 100) -> str:
    """A name or label: ``bounded_text`` on one line (no control character at all)."""
    value = bounded_text(value, field, maximum)
    bad = control_character(value)
    if bad is not None:
        raise InvalidArgument(f"must not contain the control character U+{ord(bad):04X}", field=field)
    return value


def mainland_mobile(phone: str, field: str) -> str | None:
    """An 11-digit mainland mobile number (surrounding spaces dropped), or None when empty."""
    phone = phone.strip()
    if not phone:
        return None
    if not MAINLAND_MOBILE.match(phone):
        raise InvalidArgument("must be an 11-digit mainland mobile number starting with 13-19", field=field)
    return phone


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(dt: datetime | None) -> Timestamp | None:
    """``dt`` (naive means UTC) as a Timestamp; three times quicker than ``Timestamp.FromDatetime``,
    which goes through a time tuple, and the same value, before 1970 too."""
    if dt is None:
        return None
    since = aware(dt) - EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def from_timestamp(ts: Timestamp) -> datetime:
    """``ts`` as an aware UTC datetime: ``aware(ts.ToDatetime())``, four times quicker (the same truncation of
    nanoseconds to microseconds; a valid Timestamp's nanos are never negative)."""
    return EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def mask_paths(mask: FieldMask, allowed: set[str]) -> list[str]:
    """The update_mask's paths, each one a field that may be updated (AIP-134)."""
    paths = list(mask.paths)
    if not paths:
        raise InvalidArgument(f"name at least one of {', '.join(sorted(allowed))}", field="update_mask")
    for path in paths:
        if path not in allowed:
            raise InvalidArgument(f"{path!r} cannot be updated; allowed: {', '.join(sorted(allowed))}",
                                  field="update_mask")
    return paths
