"""The one format of every CSV download: what Excel opens directly, in the operators' language.

UTF-8 with a BOM (or GB18030 where a download offers it), CRLF, one header row of Chinese names;
values as operators read them: 是/否 for flags, 男/女/未知 for genders (the customer service's
``exports.py``), times as ``YYYY-MM-DD HH:MM:SS`` in the mall's time zone, an absent value empty.
Members, crowd package members, level records and alerts all go through ``csv_download``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from services.common.validation import aware

UTF8_BOM = "utf-8-sig"
GB18030 = "gb18030"
# Where a mall (or its time zone) is unknown.
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def csv_download(header: Sequence[str], rows: Iterable[Sequence[object]], encoding: str = UTF8_BOM) -> bytes:
    """The rows under ``header`` as CSV bytes in ``encoding`` (None becomes an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode(encoding)


def yes_no(value: object) -> str:
    return "是" if value else "否"


def local_time(value: datetime | None, zone: ZoneInfo | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in ``zone`` (the mall's; Beijing time when unknown); "" for no time."""
    if value is None:
        return ""
    return aware(value).astimezone(zone or DEFAULT_ZONE).strftime(TIME_FORMAT)


def zone_of(name: str | None) -> ZoneInfo:
    """A mall's time zone by its IANA name, Beijing time when it has none or an unknown one."""
    try:
        return ZoneInfo(name) if name else DEFAULT_ZONE
    except (KeyError, ValueError):
        return DEFAULT_ZONE
