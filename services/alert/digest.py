"""The daily digest: at 10:00 in each mall's time zone, the alerts new since the mall's previous digest.

``DigestJob`` looks every ``digest_check_s`` for malls whose local time has reached the digest hour and
that have no digest for their local date yet. It makes the digest in one transaction (the row, keyed
``<mall_id>:<local date>``, so a day has at most one, and ``alert.digest.created.v1`` through the outbox),
then POSTs its JSON to the webhook with the digest id as the ``Idempotency-Key`` header, retrying with
exponential back-off until the webhook answers 2xx. A service down at 10:00 makes the day's digest when it
comes back (say at 10:05), once. A crash after the webhook answered and before that was recorded sends the
same id again; the receiver drops it. A day without new alerts makes no digest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
from google.protobuf import json_format
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.events.v1 import alert_events_pb2 as events
from services.alert.config import AlertSettings
from services.alert.evaluation import conditions_of
from services.alert.models import Alert, Digest, MallView, OutboxEvent
from services.alert.rules import zone
from services.common.clock import utcnow
from services.common.db import Database
from services.common.logs import get_logger
from services.common.outbox import add_event
from services.common.retry import one_line
from services.common.validation import aware, to_timestamp

log = get_logger(__name__)

MAX_LISTED = 500
IDEMPOTENCY_HEADER = "Idempotency-Key"
PENDING, DELIVERED, NO_WEBHOOK = pb.DELIVERY_STATE_PENDING, pb.DELIVERY_STATE_DELIVERED, pb.DELIVERY_STATE_NO_WEBHOOK


def body_of(digest: events.DigestCreated) -> bytes:
    return json.dumps(json_format.MessageToDict(digest, preserving_proto_field_name=True),
                      ensure_ascii=False).encode()


class DigestJob:
    def __init__(self, db: Database, settings: AlertSettings) -> None:
        self.db = db
        self.settings = settings
        self._http: httpx.AsyncClient | None = None

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.make_due(utcnow())
                    await self.deliver_due(utcnow())
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - the database is away; the next pass tries again
                    log.warning("digest pass failed", error=one_line(err))
                await asyncio.sleep(await self._pause())
        finally:
            if self._http is not None:
                await self._http.aclose()

    async def _pause(self) -> float:
        """Until the next look, or sooner when a retry falls due before it."""
        async with self.db.read() as session:
            soonest = await session.scalar(select(func.min(Digest.next_attempt_at)).where(
                Digest.delivery_state == PENDING))
        pause = self.settings.digest_check_s
        if soonest is not None:
            pause = min(pause, max((aware(soonest) - utcnow()).total_seconds(), 0.05))
        return pause

    async def make_due(self, now: datetime) -> list[str]:
        """Makes the digests due at ``now``; returns their ids."""
        async with self.db.read() as session:
            malls = (await session.execute(select(MallView.mall_id, MallView.timezone).where(
                MallView.deleted.is_(False)))).all()
            done = set((await session.scalars(select(Digest.id).where(
                Digest.created_at >= now - timedelta(days=2)))).all())
        made = []
        for mall_id, tz_name in malls:
            local = now.astimezone(zone(tz_name))
            digest_id = f"{mall_id}:{local.date().isoformat()}"
            if local.hour < self.settings.digest_hour or digest_id in done:
                continue
            async with self.db.transaction() as session:
                if await self._make(session, mall_id, digest_id, local.date().isoformat(), now):
                    made.append(digest_id)
        return made

    async def _make(self, session: AsyncSession, mall_id: str, digest_id: str, local_date: str,
                    now: datetime) -> bool:
        if await session.get(Digest, digest_id) is not None:
            return False
        since = await session.scalar(select(func.max(Digest.last_alert_id)).where(Digest.mall_id == mall_id)) or 0
        alerts: Sequence[Alert] = (await session.scalars(select(Alert).where(
            Alert.mall_id == mall_id, Alert.id > since).order_by(Alert.id))).all()
        if not alerts:
            return False
        mall = await session.get(MallView, mall_id)
        message = events.DigestCreated(
            digest_id=digest_id, mall_id=mall_id, mall_name=mall.name if mall else "", local_date=local_date,
            alert_count=len(alerts), create_time=to_timestamp(now),
            alerts=[events.DigestAlert(alert_id=str(a.id), member_id=a.member_id, rule_id=str(a.rule_id),
                                       rule_name=a.rule_name,
                                       conditions=[pb.ConditionKind.Name(c) for c in conditions_of(a.conditions)],
                                       first_trigger_time=to_timestamp(a.first_triggered_at))
                    for a in alerts[:MAX_LISTED]])
        session.add(Digest(id=digest_id, mall_id=mall_id, local_date=local_date, alert_count=len(alerts),
                           last_alert_id=alerts[-1].id, body=body_of(message),
                           delivery_state=PENDING if self.settings.digest_webhook_url else NO_WEBHOOK,
                           attempts=0, next_attempt_at=now, last_error="", created_at=now))
        add_event(session, OutboxEvent, message)
        log.info("digest made", digest_id=digest_id, alerts=len(alerts))
        return True

    async def deliver_due(self, now: datetime) -> int:
        """POSTs every pending digest whose attempt is due; returns how many the webhook accepted."""
        url = self.settings.digest_webhook_url
        if not url:
            return 0
        async with self.db.read() as session:
            due = (await session.execute(select(Digest.id, Digest.body).where(
                Digest.delivery_state == PENDING, Digest.next_attempt_at <= now)
                .order_by(Digest.created_at).limit(50))).all()
        accepted = 0
        for digest_id, body in due:
            error = await self._post(url, digest_id, body)
            async with self.db.transaction() as session:
                digest = await session.get(Digest, digest_id)
                if digest is None or digest.delivery_state != PENDING:
                    continue
                digest.attempts += 1
                if error is None:
                    digest.delivery_state, digest.delivered_at, digest.last_error = DELIVERED, utcnow(), ""
                    accepted += 1
                    log.info("digest delivered", digest_id=digest_id, attempts=digest.attempts)
                else:
                    delay = min(self.settings.webhook_retry_first_s * 2 ** (digest.attempts - 1),
                                self.settings.webhook_retry_max_s)
                    digest.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    digest.last_error = error[:500]
                    log.warning("digest delivery failed; will retry", digest_id=digest_id, attempt=digest.attempts,
                                retry_in_s=delay, error=error)
        return accepted

    async def _post(self, url: str, digest_id: str, body: bytes) -> str | None:
        """None when the webhook answered 2xx, else what went wrong (one line)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.webhook_timeout_s)
        try:
            reply = await self._http.post(url, content=body, headers={
                IDEMPOTENCY_HEADER: digest_id, "Content-Type": "application/json; charset=utf-8"})
        except httpx.HTTPError as err:
            return one_line(err)
        if 200 <= reply.status_code < 300:
            return None
        return f"HTTP {reply.status_code}"
