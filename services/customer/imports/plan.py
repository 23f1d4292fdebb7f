"""The plan of an import batch: which columns a new member's row has, each new member's row shaped in advance,
and for each checked row whether it creates a member, changes one or conflicts with the stored ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from crowdpack.customer.v1 import member_pb2
from services.common.mapped import table_of
from services.customer.classification.models import Tag
from services.customer.imports.rows import OK, Reference, RowResult
from services.customer.imports.writes import same_value, sqlite_bool, sqlite_date, sqlite_time
from services.customer.levels.rules import add_months
from services.customer.models import Customer

CUSTOMER = table_of(Customer)
MEMBER = member_pb2.CUSTOMER_KIND_MEMBER
IMPORT_CHANNEL = member_pb2.OPEN_CHANNEL_IMPORT
PROFILE = ("phone", "email", "name", "real_name", "gender", "birthday", "avatar_url", "wechat_openid",
           "wechat_unionid", "douyin_id", "alipay_id", "xiaohongshu_id", "registration_mall_id", "registered_at")
CARD = ("card_number", "card_open_time", "card_open_mall_id", "promotion_channel", "open_scene")
STATE = ("id", "kind", "deleted_at", "card_opened", "store_member", *PROFILE, *CARD)
# The columns a new member is inserted with, in order (every column of ``customer`` the import sets).
CREATE_COLUMNS = ("id", "kind", "phone", "email", "name", "real_name", "gender", "birthday", "avatar_url",
                  "wechat_openid", "wechat_unionid", "douyin_id", "alipay_id", "xiaohongshu_id", "registered_at",
                  "registration_mall_id", "card_opened", "card_number", "card_open_time", "card_open_mall_id",
                  "card_open_channel", "promotion_channel", "open_scene", "level", "level_frozen", "level_expires_at",
                  "group_id", "disabled", "review_status", "store_member", "virtual", "deleted_at", "created_at",
                  "updated_at")


@dataclass(frozen=True)
class JobContext:
    job_id: int
    mode: int
    tag: Tag | None
    operator_id: str
    reference: Reference
    # The member fields the file's columns feed.
    fields: frozenset[str] = frozenset(CREATE_COLUMNS)


# Nullable columns, and the file fields that can make them non-null; the others stay out of the INSERT
# (binding fewer parameters per row is measurably faster on SQLite).
OPTIONAL_SOURCES = {
    "phone": {"phone"}, "email": {"email"}, "birthday": {"birthday"}, "wechat_openid": {"wechat_openid"},
    "wechat_unionid": {"wechat_unionid"}, "douyin_id": {"douyin_id"}, "alipay_id": {"alipay_id"},
    "xiaohongshu_id": {"xiaohongshu_id"}, "registration_mall_id": {"registration_mall_id", "card_open_mall_id"},
    "card_number": {"card_number", "card_open_time"}, "card_open_time": {"card_number", "card_open_time"},
    "card_open_mall_id": {"card_open_mall_id"}, "level_expires_at": {"level"}, "group_id": set(), "deleted_at": set(),
}


def insert_columns(fields: frozenset[str]) -> tuple[str, ...]:
    return tuple(c for c in CREATE_COLUMNS if c not in OPTIONAL_SOURCES or OPTIONAL_SOURCES[c] & fields)


@dataclass(frozen=True)
class Shape:
    """What a new member's INSERT row needs besides the row's values: the reference data, the file's fields
    and the database's formats. Rows are shaped where they are read and checked (the job's reading
    thread), which takes that work off the event loop the writer runs on."""

    reference: Reference
    fields: frozenset[str]
    sqlite: bool


def shape_rows(shape: Shape, rows: Sequence[RowResult], now: datetime) -> None:
    """Gives each OK row ``insert``: the customer row written if it creates a member, in ``insert_columns``
    order without the id. A card number made from the id is left None (the writer fills it in)."""
    ref = shape.reference
    review = member_pb2.REVIEW_STATUS_PENDING if ref.review_required else member_pb2.REVIEW_STATUS_APPROVED
    t, b, y = (sqlite_time, sqlite_bool, sqlite_date) if shape.sqlite else (same_value,) * 3
    now_text, true, false = t(now), b(True), b(False)
    staff, months_of = ref.staff_phones, ref.levels
    columns = insert_columns(shape.fields)
    # CREATE_COLUMNS without the id, picked down to the columns the file can fill.
    pick = (itemgetter(*(CREATE_COLUMNS.index(c) - 1 for c in columns[1:]))
            if len(columns) < len(CREATE_COLUMNS) else None)
    for row in rows:
        v = row.values
        if row.status != OK or v is None:
            continue
        get = v.get
        opens = "card_number" in v or "card_open_time" in v
        level = get("level", 0)
        months = months_of.get(level, 0) if level else 0
        open_mall = get("card_open_mall_id") if opens else None
        registered = get("registered_at")
        phone = get("phone")
        full = (
            MEMBER, phone, get("email"), get("name", ""), get("real_name", ""),
            get("gender", member_pb2.GENDER_UNKNOWN), y(get("birthday")), get("avatar_url", ""),
            get("wechat_openid"), get("wechat_unionid"), get("douyin_id"), get("alipay_id"),
            get("xiaohongshu_id"), t(registered) if registered else now_text,
            get("registration_mall_id", open_mall), true if opens else false, get("card_number") if opens else None,
            t(get("card_open_time", now)) if opens else None, open_mall, IMPORT_CHANNEL if opens else 0,
            get("promotion_channel", ""), get("open_scene", ""), level, false,
            t(add_months(now, months)) if months else None, None, false, review, true if phone in staff else false,
            false, None, now_text, now_text)
        row.insert = pick(full) if pick is not None else full


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicate: int = 0
    conflict: int = 0


@dataclass
class Plan:
    """What a batch does: the rows that create members, the stored members rows change (id -> row), the conflicts
    (row, field, reason)."""

    creates: list[RowResult] = field(default_factory=list)
    updates: dict[int, RowResult] = field(default_factory=dict)
    conflicts: list[tuple[RowResult, str, str]] = field(default_factory=list)


def plan(valid: Sequence[RowResult], by_phone: dict[str, int], by_email: dict[str, int], by_card: dict[str, int],
         existing: dict[int, Any]) -> Plan:
    """Decides each valid row against the stored customers its phone, email and card number name."""
    out = Plan()
    updates = out.updates
    for row in valid:
        v = row.values
        assert v is not None
        phone_id, email_id = by_phone.get(v.get("phone", "")), by_email.get(v.get("email", ""))
        if phone_id is not None and email_id is not None and phone_id != email_id:
            out.conflicts.append((row, "email", f"email: belongs to customer {email_id}, the phone to "
                                                f"customer {phone_id}"))
            continue
        target = phone_id if phone_id is not None else email_id
        owner = by_card.get(v.get("card_number", ""))
        if owner is not None and owner != target:
            out.conflicts.append((row, "card_number", f"card_number: belongs to customer {owner}"))
            continue
        if target is None:
            out.creates.append(row)
            continue
        found = existing[target]
        key = "phone" if phone_id is not None else "email"
        if found.kind != MEMBER:
            out.conflicts.append((row, key, f"{key}: belongs to business customer {target}"))
        elif found.deleted_at is not None:
            out.conflicts.append((row, key, f"{key}: belongs to deleted member {target}"))
        elif target in updates:
            out.conflicts.append((row, key, f"{key}: matches the same member ({target}) as row "
                                            f"{updates[target].number}, which changes its phone or email"))
        else:
            updates[target] = row
    return out
