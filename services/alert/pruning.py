"""Member orders that have left every window, deleted in the background.

The rules count the last 90 days at most, and every reader of ``member_order`` (the order consumer's windows,
the re-evaluation) reads only orders since ``now - ordering.TOO_OLD`` (91 days: a day's slack for time zones); a
recorded event older than that is never written either. An order older than ``KEEP`` (a day more again, so that
a clock set back a little still never reads a pruned row) can therefore change no window and no alert: the
alerts keep their own copy of the orders behind them (``alert_order``). Deleting it only keeps the table (and
each member's index run, which every order of the member reads) at 90 days instead of growing for ever.

``OrderPruner`` walks the members in id order along the window index, a batch of members per write
transaction, deleting what is older than ``KEEP`` of each; each transaction is short, so the order consumer
(the one writer on SQLite) waits for one batch at most. It runs once a retention interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.alert.models import MemberOrder
from services.alert.ordering import TOO_OLD
from services.common.clock import utcnow
from services.common.db import Database, rowcount
from services.common.logs import get_logger
from services.common.retention import PRUNED
from services.common.retry import every

log = get_logger(__name__)

KEEP = TOO_OLD + timedelta(days=1)


class OrderPruner:
    def __init__(self, db: Database, *, batch: int = 1000, interval_s: float = 3600.0) -> None:
        self.db = db
        self.batch = batch
        self.interval_s = interval_s

    async def run(self) -> None:
        await every(self.interval_s, self.prune_once, what="member order pruning")

    async def prune_once(self, now: datetime | None = None) -> int:
        """Deletes every member order older than ``KEEP`` as of ``now``; returns how many."""
        cutoff = (now or utcnow()) - KEEP
        after: str | None = ""
        total = 0
        while after is not None:
            start = after
            deleted, after = await self.db.run_sync_write(
                lambda session: self._batch(session, start, cutoff))  # noqa: B023 - awaited at once
            total += deleted
        if total:
            PRUNED.labels(MemberOrder.__tablename__).inc(total)
            log.info("member orders pruned", rows=total, before=cutoff.isoformat())
        return total

    def _batch(self, session: Session, after: str, cutoff: datetime) -> tuple[int, str | None]:
        """Deletes the old orders of the next ``batch`` members after ``after``; returns how many, and the last
        member done (None when none is left)."""
        members = (select(MemberOrder.member_id).where(MemberOrder.member_id > after).distinct()
                   .order_by(MemberOrder.member_id).limit(self.batch).subquery())
        last = session.scalar(select(func.max(members.c.member_id)))
        if last is None:
            return 0, None
        return rowcount(session.execute(delete(MemberOrder).where(
            MemberOrder.member_id > after, MemberOrder.member_id <= last, MemberOrder.occur_time < cutoff))), last
