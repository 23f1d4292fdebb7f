"""How members become segment-engine columns, bitmaps and orders (one place for every name).

Member ids are engine row numbers: row ``customer.id``; row 0 and business customers are
never in ``live``. Days are days since 1970-01-01; an order's day is in its mall's time zone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from services.common.validation import aware
from services.customer.models import Customer, CustomerStats

EPOCH = date(1970, 1, 1)
# Columns: name -> how a (customer, stats) pair gives its value (None = null).
COLUMNS = ("gender", "card_opened", "store_member", "disabled", "virtual", "level", "review_status", "birth_mmdd",
           "birth_day", "card_open_day", "level_expire_day", "points", "red_packet", "registration_mall")
LIVE = "live"
DEFAULT_GROUP = "group:default"


def day_number(d: date) -> int:
    return (d - EPOCH).days


def local_day(moment: datetime, tz: ZoneInfo) -> int:
    return day_number(aware(moment).astimezone(tz).date())


def member_values(m: Any, tz: ZoneInfo) -> dict[str, int | None]:
    """Column values of one member row (``MEMBER_COLUMNS`` selected), times resolved in ``tz``."""
    return {
        "gender": m.gender, "card_opened": int(m.card_opened), "store_member": int(m.store_member),
        "disabled": int(m.disabled), "virtual": int(m.virtual), "level": m.level, "review_status": m.review_status,
        "birth_mmdd": m.birthday.month * 100 + m.birthday.day if m.birthday else None,
        "birth_day": day_number(m.birthday) if m.birthday else None,
        "card_open_day": local_day(m.card_open_time, tz) if m.card_open_time else None,
        "level_expire_day": local_day(m.level_expires_at, tz) if m.level_expires_at else None,
        "points": m.points_balance, "red_packet": m.red_packet_balance_fen,
        "registration_mall": m.registration_mall_id,
    }


# What member_values reads: one Core select, no ORM objects (fast for millions of rows).
MEMBER_COLUMNS = (
    Customer.id, Customer.kind, Customer.deleted_at, Customer.group_id, Customer.gender, Customer.card_opened,
    Customer.store_member, Customer.disabled, Customer.virtual, Customer.level, Customer.review_status,
    Customer.birthday, Customer.card_open_time, Customer.level_expires_at, Customer.registration_mall_id,
    func.coalesce(CustomerStats.points_balance, 0).label("points_balance"),
    func.coalesce(CustomerStats.red_packet_balance_fen, 0).label("red_packet_balance_fen"),
)


def member_rows() -> Select:
    return select(*MEMBER_COLUMNS).outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id)


def tag_bitmap(tag_id: int) -> str:
    return f"tag:{tag_id}"


def group_bitmap(group_id: int | None) -> str:
    return DEFAULT_GROUP if group_id is None else f"group:{group_id}"


def interaction_bitmap(mall_id: int) -> str:
    return f"interaction:{mall_id}"
