"""How members become segment-engine columns, bitmaps and orders (one place for every name).

Member ids are engine row numbers: row ``customer.id``; row 0 and business customers are
never in ``live``. Days are days since 1970-01-01; an order's day is in its mall's time zone.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.common.validation import aware

EPOCH = date(1970, 1, 1)
# The member columns (how each is read: crowds/loader.py).
COLUMNS = ("gender", "card_opened", "store_member", "disabled", "virtual", "level", "review_status", "birth_mmdd",
           "birth_day", "card_open_day", "level_expire_day", "points", "red_packet", "registration_mall",
           "registration_day", "card_open_channel", "online_count", "online_total", "online_last_day")
LIVE = "live"
DEFAULT_GROUP = "group:default"


def day_number(d: date) -> int:
    return (d - EPOCH).days


def local_day(moment: datetime, tz: ZoneInfo) -> int:
    return day_number(aware(moment).astimezone(tz).date())


def tag_bitmap(tag_id: int) -> str:
    return f"tag:{tag_id}"


def group_bitmap(group_id: int | None) -> str:
    return DEFAULT_GROUP if group_id is None else f"group:{group_id}"


def interaction_bitmap(mall_id: int) -> str:
    return f"interaction:{mall_id}"
