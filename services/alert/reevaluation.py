"""The background pass a rule change starts: the mall's last 90 days evaluated for that rule.

A created or edited rule is PENDING with ``eval_version`` = its new version. The pass counts the members
with orders in the mall's last 90 days, then evaluates them in member-id order, a batch per transaction,
recording its progress (members done, alerts opened, the last member done) on the rule in the same
transaction. A restarted service resumes after the last member done. An edit during a pass makes the pass
stop at its next batch; the newer version's pass starts over. Old alerts stay; new ones appear as the pass
finds them (the order consumer keeps applying the current rules to new orders meanwhile).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.orm import Session

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.evaluation import Days, evaluate, horizon_start
from services.alert.models import AlertRule, MallView, MemberOrder, StoreView
from services.alert.ordering import read_windows
from services.alert.raising import Trigger, excluded_members, record_triggers
from services.alert.rules import spec_of, zone
from services.common.clock import utcnow
from services.common.db import Database
from services.common.logs import get_logger
from services.common.retry import one_line
from services.common.validation import aware

log = get_logger(__name__)

PENDING, RUNNING, DONE = pb.EVALUATION_STATE_PENDING, pb.EVALUATION_STATE_RUNNING, pb.EVALUATION_STATE_DONE


def _in_mall(mall_id: str) -> ColumnElement[bool]:
    """The order is of the mall, said so that no index is looked up by it: the pass then reads the window index
    (member, mall, time, ...) in member order from its cursor and stops after a batch of members (and counts
    members without sorting), where a planner that took the mall for selective would read and sort the mall's 90
    days for every batch."""
    return MemberOrder.mall_id.concat("") == mall_id


class Reevaluator:
    def __init__(self, db: Database, *, batch: int = 1000, poll_s: float = 2.0) -> None:
        self.db = db
        self.batch = batch
        self.poll_s = poll_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A rule changed: start at once instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.step():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the database is away; the pass resumes from its cursor
                log.warning("re-evaluation failed; will resume", error=one_line(err))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            except TimeoutError:
                pass

    async def step(self) -> bool:
        """Runs one batch of the oldest unfinished pass; False when none is left."""
        async with self.db.read() as session:
            rule_id = await session.scalar(select(AlertRule.id).where(
                AlertRule.eval_state.in_([PENDING, RUNNING]), AlertRule.deleted_at.is_(None))
                .order_by(AlertRule.updated_at, AlertRule.id).limit(1))
        if rule_id is None:
            return False
        now = utcnow()
        await self.db.run_sync_write(lambda session: self._batch(session, rule_id, now))
        return True

    def _batch(self, session: Session, rule_id: int, now: datetime) -> None:
        # Locked on PostgreSQL: an edit of the rule meanwhile (a new version, PENDING) is not overwritten.
        rule = session.get(AlertRule, rule_id, with_for_update=True)
        if rule is None or rule.deleted_at is not None or rule.eval_state == DONE:
            return
        mall = session.get(MallView, rule.mall_id)
        tz = zone(mall.timezone if mall else "")
        since = horizon_start(now, tz)
        if rule.eval_state == PENDING or rule.eval_version != rule.version:
            rule.eval_state, rule.eval_version, rule.eval_cursor = RUNNING, rule.version, ""
            rule.eval_done = rule.eval_raised = 0
            rule.eval_started_at, rule.eval_finished_at = now, None
            rule.eval_total = session.scalar(select(func.count(distinct(MemberOrder.member_id))).where(
                _in_mall(rule.mall_id), MemberOrder.occur_time >= since)) or 0
            log.info("re-evaluation started", rule_id=rule.id, version=rule.version, members=rule.eval_total)
        members = list(session.scalars(
            select(MemberOrder.member_id).where(
                MemberOrder.member_id > rule.eval_cursor, _in_mall(rule.mall_id), MemberOrder.occur_time >= since)
            .group_by(MemberOrder.member_id).order_by(MemberOrder.member_id).limit(self.batch)))
        if members:
            stores = session.scalars(select(StoreView).where(
                StoreView.mall_id == rule.mall_id, StoreView.deleted.is_(False))).all()
            spec = spec_of(rule, stores)
            skip = excluded_members(session, members)
            wanted = [m for m in members if m not in skip]
            windows = read_windows(session, wanted, [rule.mall_id], since, set())
            days = Days(now, tz)
            triggers = [Trigger(rule.mall_id, m, spec, hits) for m in wanted
                        if (hits := evaluate(spec, windows.get((rule.mall_id, m), {}).values(), days))]
            rule.eval_raised += record_triggers(session, triggers, now)
            rule.eval_done += len(members)
            rule.eval_cursor = members[-1]
        if len(members) < self.batch:
            rule.eval_state, rule.eval_finished_at = DONE, now
            rule.eval_total = max(rule.eval_total, rule.eval_done)
            started = aware(rule.eval_started_at) if rule.eval_started_at else now
            log.info("re-evaluation done", rule_id=rule.id, version=rule.version, members=rule.eval_done,
                     alerts=rule.eval_raised, seconds=round((now - started).total_seconds(), 1))
