"""One file row to the member values it sets, or the reason it is skipped.

A row is skipped when it is empty, when it has neither phone nor email, when any value is
malformed (the reason names the field), or when its phone, email or card number already
appeared on an earlier imported row of the file (a duplicate). Empty cells set nothing.
openid, unionid and the other channel ids are kept exactly as written (case-sensitive); emails
are lower-cased; gender, mall and level names match case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import member_pb2
from services.common.errors import InvalidArgument
from services.common.validation import control_character
from services.customer.imports.columns import HeaderMapping
from services.customer.validation import normalize_email, normalize_phone, parse_birthday, url

OK = pb.IMPORT_ROW_STATUS_OK
EMPTY = pb.IMPORT_ROW_STATUS_EMPTY
INVALID = pb.IMPORT_ROW_STATUS_INVALID
DUPLICATE = pb.IMPORT_ROW_STATUS_DUPLICATE
CONFLICT = pb.IMPORT_ROW_STATUS_CONFLICT

GENDERS = {
    "男": member_pb2.GENDER_MALE, "male": member_pb2.GENDER_MALE, "m": member_pb2.GENDER_MALE,
    "女": member_pb2.GENDER_FEMALE, "female": member_pb2.GENDER_FEMALE, "f": member_pb2.GENDER_FEMALE,
    "未知": member_pb2.GENDER_UNKNOWN, "unknown": member_pb2.GENDER_UNKNOWN, "保密": member_pb2.GENDER_UNKNOWN,
}
CARD_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,20}$")
DATE_PARTS = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
MAX_LEVEL = 10


@dataclass
class Reference:
    """What rows are checked against: malls, levels (number -> validity months), active store staff phones."""

    mall_ids: set[int] = field(default_factory=set)
    mall_names: dict[str, int] = field(default_factory=dict)
    levels: dict[int, int] = field(default_factory=dict)
    level_names: dict[str, int] = field(default_factory=dict)
    staff_phones: set[str] = field(default_factory=set)
    review_required: bool = False


@dataclass(slots=True)
class RowResult:
    number: int
    status: int
    values: dict[str, Any] | None = None
    field: str = ""
    reason: str = ""
    # The INSERT row of the member it would create, without the id (plan.shape_rows).
    insert: tuple[Any, ...] | None = None


class RowError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def _domain(err: InvalidArgument) -> RowError:
    return RowError(err.field or "", err.message)


def parse_time(value: str, field: str, zone: tzinfo, now: datetime) -> datetime | None:
    text = value.strip().replace("/", "-")
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise RowError(field, f"{field}: must be a time as YYYY-MM-DD HH:MM:SS") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
    parsed = parsed.astimezone(UTC)
    if parsed > now:
        raise RowError(field, f"{field}: must not be in the future")
    if parsed.year < 1970:
        raise RowError(field, f"{field}: must be after 1970")
    return parsed


def _text_parser(name: str, maximum: int) -> Callable[[str], str]:
    """Trimmed text of at most ``maximum`` characters (channel ids too: they keep their case)."""
    def parse(value: str) -> str:
        value = value.strip()
        if len(value) > maximum:
            raise RowError(name, f"{name}: must be at most {maximum} characters")
        bad = control_character(value)
        if bad is not None:
            raise RowError(name, f"{name}: must not contain the control character U+{ord(bad):04X}")
        return value

    return parse


class RowValidator:
    """Checks rows in file order; remembers the keys of accepted rows to find duplicates."""

    def __init__(self, mapping: HeaderMapping, reference: Reference, zone: tzinfo) -> None:
        self.reference = reference
        self.zone = zone
        self.now = datetime.now(UTC)
        self.today = date.today()
        parsers: dict[str, Callable[[str], Any]] = {
            "phone": self._phone, "email": self._email,
            "name": _text_parser("name", 100), "real_name": _text_parser("real_name", 100),
            "gender": self._gender, "birthday": self._birthday, "avatar_url": self._url,
            "wechat_openid": _text_parser("wechat_openid", 64), "wechat_unionid": _text_parser("wechat_unionid", 64),
            "douyin_id": _text_parser("douyin_id", 64), "alipay_id": _text_parser("alipay_id", 64),
            "xiaohongshu_id": _text_parser("xiaohongshu_id", 64),
            "registration_mall_id": lambda v: self._mall(v, "registration_mall_id"),
            "card_open_mall_id": lambda v: self._mall(v, "card_open_mall_id"),
            "registered_at": lambda v: parse_time(v, "registration_time", self.zone, self.now),
            "card_open_time": lambda v: parse_time(v, "card_open_time", self.zone, self.now),
            "card_number": self._card_number, "level": self._level,
            "promotion_channel": _text_parser("promotion_channel", 100),
            "open_scene": _text_parser("open_scene", 100),
        }
        # Keys first, so a row with a bad key is reported for its key.
        order = sorted(mapping.index.items(), key=lambda kv: (kv[0] not in ("phone", "email"), kv[1]))
        self.plan = [(name, i, parsers[name]) for name, i in order]
        self.phones: dict[str, int] = {}
        self.emails: dict[str, int] = {}
        self.cards: dict[str, int] = {}

    # --- one value each

    @staticmethod
    def _phone(value: str) -> str | None:
        if len(value) == 11 and value.isdigit() and value[0] == "1" and value[1] in "3456789":
            return value  # the common case, without the regular expression
        try:
            return normalize_phone(value.replace(" ", "").replace("-", "").removeprefix("+86"), "phone")
        except InvalidArgument as err:
            raise _domain(err) from None

    @staticmethod
    def _email(value: str) -> str | None:
        try:
            return normalize_email(value, "email")
        except InvalidArgument as err:
            raise _domain(err) from None

    @staticmethod
    def _url(value: str) -> str:
        try:
            return url(value, "avatar_url")
        except InvalidArgument as err:
            raise _domain(err) from None

    @staticmethod
    def _gender(value: str) -> int | None:
        gender = GENDERS.get(value.strip().casefold())
        if gender is None:
            if value.isspace():
                return None
            raise RowError("gender", "gender: must be 男, 女, 未知, male, female or unknown")
        return gender

    def _birthday(self, value: str) -> date | None:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":  # the common case, YYYY-MM-DD
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.year >= 1900 and parsed <= self.today:
                    return parsed
        text = value.strip()
        if " " in text:  # a spreadsheet date-time cell
            text = text.split(" ", 1)[0]
        parts = DATE_PARTS.match(text)
        if parts:
            text = f"{int(parts[1]):04d}-{int(parts[2]):02d}-{int(parts[3]):02d}"
        try:
            return parse_birthday(text, "birthday")
        except InvalidArgument as err:
            raise _domain(err) from None

    def _mall(self, value: str, name: str) -> int | None:
        text = value.strip()
        if not text:
            return None
        if text.isdigit() and int(text) in self.reference.mall_ids:
            return int(text)
        mall = self.reference.mall_names.get(text.casefold())
        if mall is None:
            raise RowError(name, f"{name}: no mall {text!r} (give a mall id or name)")
        return mall

    @staticmethod
    def _card_number(value: str) -> str | None:
        text = value.strip()
        if not text:
            return None
        if not CARD_NUMBER.match(text):
            raise RowError("card_number", "card_number: must be 1-20 letters, digits or '-'")
        return text

    def _level(self, value: str) -> int | None:
        text = value.strip()
        if not text:
            return None
        if text.isdigit():
            number = int(text)
            if number > MAX_LEVEL:
                raise RowError("level", "level: must be 0..10 or a level name")
            if number and number not in self.reference.levels:
                raise RowError("level", f"level: no level {number}")
            return number
        named = self.reference.level_names.get(text.casefold())
        if named is None:
            raise RowError("level", f"level: no level named {text!r}")
        return named

    # --- a row

    def check(self, number: int, cells: list[str]) -> RowResult:
        values: dict[str, Any] = {}
        width = len(cells)
        try:
            for name, i, parse in self.plan:
                if i >= width:
                    continue
                raw = cells[i]
                if raw:
                    value = parse(raw)  # a blank cell parses to None or ""
                    if value is not None and value != "":
                        values[name] = value
        except RowError as err:
            return RowResult(number, INVALID, field=err.field, reason=err.reason)
        if not values:
            if all(not c or c.isspace() for c in cells):
                return RowResult(number, EMPTY, reason="empty row")
        phone, email = values.get("phone"), values.get("email")
        if phone is None and email is None:
            return RowResult(number, INVALID, field="phone", reason="no phone or email (one is required)")
        if "card_open_mall_id" in values and "card_number" not in values:
            # The opening mall belongs to a card: without the card it would be dropped unseen.
            return RowResult(number, INVALID, field="card_open_mall_id",
                             reason="card_open_mall_id: an opening mall (开卡商场) needs the card number (会员卡号) "
                                    "in the same row")
        if phone is not None and phone in self.phones:
            return RowResult(number, DUPLICATE, field="phone", reason=f"same phone as row {self.phones[phone]}")
        if email is not None and email in self.emails:
            return RowResult(number, DUPLICATE, field="email", reason=f"same email as row {self.emails[email]}")
        card = values.get("card_number")
        if card is not None and card in self.cards:
            return RowResult(number, DUPLICATE, field="card_number",
                             reason=f"same card number as row {self.cards[card]}")
        if phone is not None:
            self.phones[phone] = number
        if email is not None:
            self.emails[email] = number
        if card is not None:
            self.cards[card] = number
        return RowResult(number, OK, values=values)
