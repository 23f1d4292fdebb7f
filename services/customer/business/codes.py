"""Business customer codes: "CUS" + YYYYMMDD + a 4-digit sequence that restarts every day.

The day is the China calendar day (UTC+8, no daylight saving), the business day of the
sales teams this serves. The sequence lives in ``business_code_sequence``, one row per
day, advanced by one atomic upsert (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``)
inside the creating transaction: on PostgreSQL concurrent creators queue on that row, on
SQLite writers are serialised anyway, and a rolled-back create gives its number back. The
unique index on ``business_profile.code`` backs this up.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import dialect_of
from services.common.errors import FailedPrecondition
from services.customer.business.models import BusinessCodeSequence

PREFIX = "CUS"
CODE_TZ = timezone(timedelta(hours=8), "UTC+08:00")
MAX_SEQUENCE = 9999


def code_day(now: datetime) -> str:
    return now.astimezone(CODE_TZ).strftime("%Y%m%d")


def format_code(day: str, sequence: int) -> str:
    return f"{PREFIX}{day}{sequence:04d}"


async def next_code(session: AsyncSession, now: datetime) -> str:
    """Takes the next code of ``now``'s day, in the caller's transaction."""
    day = code_day(now)
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    stmt = (insert(BusinessCodeSequence).values(day=day, last_value=1)
            .on_conflict_do_update(index_elements=[BusinessCodeSequence.day],
                                   set_={"last_value": BusinessCodeSequence.last_value + 1})
            .returning(BusinessCodeSequence.last_value))
    sequence = (await session.execute(stmt)).scalar_one()
    if sequence > MAX_SEQUENCE:
        raise FailedPrecondition(f"all {MAX_SEQUENCE} customer codes of {day} are taken; try again tomorrow")
    return format_code(day, sequence)
