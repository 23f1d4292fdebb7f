"""How a member's level moves: manual changes, automatic upgrades by cumulative spend, expiry.

Every change writes a ``level_change`` row, a timeline entry and a ``customer.member.level_changed``
event in the caller's transaction. A frozen level (after a manual change) never moves by
itself; a disabled member's level never moves at all.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import level_service_pb2 as pb
from services.common.bulk import Adds, Staged
from services.customer import member_events, timeline
from services.customer.levels.models import Level, LevelChange
from services.customer.member_rows import MemberRow, StatsRow
from services.customer.models import Customer, CustomerStats
from services.customer.stats import stats_row

KIND_NAMES: dict[int, str] = {pb.LEVEL_CHANGE_KIND_UPGRADE: "upgrade", pb.LEVEL_CHANGE_KIND_RETAIN: "retain",
                              pb.LEVEL_CHANGE_KIND_DOWNGRADE: "downgrade", pb.LEVEL_CHANGE_KIND_MANUAL: "manual"}


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


async def levels(session: AsyncSession) -> Sequence[Level]:
    return (await session.scalars(select(Level).order_by(Level.number))).all()


async def move(session: AsyncSession, member: Customer, to_level: int, kind: int, reason: str, operator_id: str,
               now: datetime, level: Level | None, *, flush: bool = True) -> LevelChange:
    """Puts the member at ``to_level`` (``level`` is its definition, None for 0) and records it.

    ``flush=False`` leaves the change pending (its ``id`` unset) for a caller that flushes once for many.
    """
    change = moved(session, member, await stats_row(session, member.id), to_level, kind, reason, operator_id, now,
                   level)
    assert change is not None  # a session's change is a mapped row
    if flush:
        await session.flush()
    return change


def moved(session: Adds, member: Customer | MemberRow, stats: CustomerStats | StatsRow, to_level: int, kind: int,
          reason: str, operator_id: str, now: datetime, level: Level | None) -> LevelChange | None:
    """``move`` on the member's stats row at hand, leaving every row pending (nothing read or flushed). Returns the
    ``LevelChange`` added to a session; to ``Staged`` rows (a batch's) it adds the row's plain values (no mapped
    object made) and returns None."""
    from_level = member.level
    member.level = to_level
    member.level_expires_at = add_months(now, level.validity_months) if level and level.validity_months else None
    member.updated_at = now
    stats.level_spend_fen = 0
    values = {"customer_id": member.id, "from_level": from_level, "to_level": to_level, "kind": kind,
              "reason": reason, "operator_id": operator_id, "created_at": now}
    change = None
    if isinstance(session, Staged):
        session.add_row(LevelChange, values)
    else:
        change = LevelChange(**values)
        session.add(change)
    timeline.record(session, member.id, "level_changed", operator_id, **{"from": from_level, "to": to_level},
                    change=KIND_NAMES[kind], reason=reason)
    member_events.level_changed(session, member, from_level, KIND_NAMES[kind], reason, operator_id)
    return change


async def apply_spend(session: AsyncSession, member: Customer, spend_fen: int, at: datetime,
                      defined: Sequence[Level] | None = None) -> LevelChange | None:
    """Counts a spend (negative for a refund) and upgrades automatically when a threshold is reached.

    ``defined``: the levels, when the caller read them already (e.g. once for a batch of events). An upgrade's
    rows are left pending for the caller's next flush.
    """
    stats = await stats_row(session, member.id)
    if defined is None and _may_upgrade(member, spend_fen):
        defined = await levels(session)
    return count_spend(session, member, stats, spend_fen, at, defined or ())


def count_spend(session: Adds, member: Customer | MemberRow, stats: CustomerStats | StatsRow, spend_fen: int,
                at: datetime, defined: Sequence[Level]) -> LevelChange | None:
    """``apply_spend`` on the stats row and level rules at hand: nothing is read, the rows are left pending (an
    upgrade's ``LevelChange`` is returned as ``moved`` returns it)."""
    stats.cumulative_spend_fen = max(0, stats.cumulative_spend_fen + spend_fen)
    stats.level_spend_fen = max(0, stats.level_spend_fen + spend_fen)
    if not _may_upgrade(member, spend_fen):
        return None
    reachable = [lv for lv in defined if lv.upgrade_mode == pb.UPGRADE_MODE_AUTOMATIC
                 and lv.number > member.level and lv.upgrade_spend_fen <= stats.cumulative_spend_fen]
    if not reachable:
        return None
    target = reachable[-1]
    return moved(session, member, stats, target.number, pb.LEVEL_CHANGE_KIND_UPGRADE,
                 f"cumulative spend reached {target.upgrade_spend_fen} fen", "system", at, target)


def _may_upgrade(member: Customer | MemberRow, spend_fen: int) -> bool:
    return not (spend_fen <= 0 or member.level_frozen or member.disabled or member.deleted_at is not None
                or member.virtual)


async def expire(session: AsyncSession, as_of: datetime) -> tuple[int, int]:
    """Retains or downgrades every unfrozen, enabled member whose level expired by ``as_of``."""
    defined = {lv.number: lv for lv in await levels(session)}
    due = (await session.scalars(select(Customer).where(
        Customer.level > 0, Customer.level_frozen.is_(False), Customer.disabled.is_(False),
        Customer.deleted_at.is_(None), Customer.level_expires_at.is_not(None), Customer.level_expires_at <= as_of,
    ).order_by(Customer.id))).all()
    retained = downgraded = 0
    for member in due:
        current = defined.get(member.level)
        spend = (await stats_row(session, member.id)).level_spend_fen
        if current is not None and spend >= current.retain_spend_fen:
            await move(session, member, member.level, pb.LEVEL_CHANGE_KIND_RETAIN,
                       f"spent {spend} fen in the period (retain needs {current.retain_spend_fen})", "system", as_of,
                       current)
            retained += 1
        else:
            lower = max((n for n in defined if n < member.level), default=0)
            await move(session, member, lower, pb.LEVEL_CHANGE_KIND_DOWNGRADE,
                       f"spent {spend} fen in the period (retain needs "
                       f"{current.retain_spend_fen if current else 0})", "system", as_of, defined.get(lower))
            downgraded += 1
    return retained, downgraded
