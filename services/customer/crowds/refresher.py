"""Recomputes crowd packages: right after they are created or edited, daily at the configured
hour in each mall's time zone, and again after a failure (with back-off) until it succeeds.

A package waiting for or under computation is UPDATING; then READY with its count, time and
result bitmap, or FAILED with the reason (and retried). A refresh interrupted by a crash is
still marked as requested, so the next process picks it up: nothing is ever stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update

from crowdpack.customer.v1 import crowd_pb2
from crowdpack.customer.v1 import crowd_service_pb2 as pb
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import DomainError
from services.common.logs import get_logger
from services.common.retry import one_line
from services.common.validation import aware
from services.customer.crowds.catalogue import translate
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.models import CrowdPackage
from services.customer.organization.models import Mall

log = get_logger(__name__)
MAX_BACKOFF_S = 3600


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


class Refresher:
    def __init__(self, db: Database, index: CrowdIndex, *, daily_hour: int = 3, poll_s: float = 1.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.index = index
        self.daily_hour = daily_hour
        self.poll_s = poll_s
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.schedule_daily()
                while await self.refresh_next():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the database may be away; try again
                log.warning("crowd refresher pass failed", error=one_line(err))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            except TimeoutError:
                pass

    def daily_due(self, now: datetime, tz: str) -> datetime:
        """The latest daily refresh moment at or before ``now`` in the mall's zone."""
        local = now.astimezone(ZoneInfo(tz))
        moment = local.replace(hour=self.daily_hour, minute=0, second=0, microsecond=0)
        if moment > local:
            moment -= timedelta(days=1)
        return moment

    async def schedule_daily(self) -> int:
        """Asks for a refresh of every package not computed since its mall's last daily moment."""
        now = self.clock()
        asked = 0
        async with self.db.transaction() as session:
            zones = dict((await session.execute(select(Mall.id, Mall.timezone))).all())
            rows = (await session.execute(select(CrowdPackage.id, CrowdPackage.mall_id, CrowdPackage.computed_at)
                                          .where(CrowdPackage.refresh_requested_at.is_(None)))).all()
            stale = [pid for pid, mall_id, computed in rows
                     if computed is None or aware(computed) < self.daily_due(now, zones.get(mall_id, "Asia/Shanghai"))]
            if stale:
                await session.execute(update(CrowdPackage).where(CrowdPackage.id.in_(stale)).values(
                    status=pb.PACKAGE_STATUS_UPDATING, refresh_requested_at=now, next_attempt_at=now, attempts=0))
                asked = len(stale)
        if asked:
            log.info("daily crowd refresh scheduled", packages=asked)
        return asked

    async def refresh_next(self) -> bool:
        """Computes the next due package; returns False when none is due."""
        now = self.clock()
        async with self.db.read() as session:
            package = await session.scalar(select(CrowdPackage).where(
                CrowdPackage.refresh_requested_at.is_not(None),
                or_(CrowdPackage.next_attempt_at.is_(None), CrowdPackage.next_attempt_at <= now),
            ).order_by(CrowdPackage.next_attempt_at, CrowdPackage.id).limit(1))
            if package is None:
                return False
            version = package.updated_at
            definition = crowd_pb2.CrowdDefinition.FromString(package.definition)
            try:
                translation = await translate(session, package.mall_id, definition, now)
                error = None
            except DomainError as err:
                translation, error = None, err.message
        result = None
        if translation is not None:
            try:
                result = await self.index.evaluate(translation)
            except Exception as err:  # noqa: BLE001 - shown on the package and retried
                error = one_line(err)
        async with self.db.transaction() as session:
            current = await session.get(CrowdPackage, package.id)
            if current is None or aware(current.updated_at) != aware(version) or current.refresh_requested_at is None:
                return True  # edited or deleted meanwhile: its new request (if any) is picked next
            if result is not None:
                current.status, current.member_count, current.result = pb.PACKAGE_STATUS_READY, len(result), \
                    result.serialize()
                current.computed_at, current.failure_reason, current.attempts = self.clock(), "", 0
                current.refresh_requested_at = current.next_attempt_at = None
            else:
                current.attempts += 1
                current.status, current.failure_reason = pb.PACKAGE_STATUS_FAILED, (error or "unknown error")[:500]
                current.next_attempt_at = now + backoff(current.attempts)
                log.warning("crowd package refresh failed", package_id=current.id, error=error,
                            attempt=current.attempts)
        return True
