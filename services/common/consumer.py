"""Idempotent JetStream consumers: durable pull, explicit ack, dedupe in the same transaction as the effect.

For each message, ``EventConsumer`` opens a write transaction, records the message id in
``processed_message`` and runs the handler. Both commit together, then the message is
acked. A redelivery (after a crash before the ack, or a republish) finds its id recorded
and is acked without effect. A failing handler is nak'ed with a growing delay and
terminated after ``max_deliver`` attempts (logged as poison).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from prometheus_client import Counter
from sqlalchemy import DateTime, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.common.clock import utcnow
from services.common.db import Database
from services.common.events import Stream, decode
from services.common.logs import get_logger
from services.common.retry import one_line

log = get_logger(__name__)

HANDLED = Counter("crowdpack_consumer_messages_total", "Messages a consumer handled", ["consumer", "outcome"])

# A handler takes the message class its subject carries (events.SUBJECT_TYPES): a concrete protobuf type per
# subject, which one dict of handlers cannot state to the type checker, hence Any.
Handler = Callable[[AsyncSession, Any], Awaitable[None]]


class ProcessedMessageMixin:
    """Columns of the ``processed_message`` table: which consumer applied which message."""

    __tablename__ = "processed_message"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Indexed for retention (services/common/retention.py).
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"ProcessedMessage({self.consumer!r}, {self.msg_id!r})"


class EventConsumer:
    """A durable pull consumer on one stream whose handlers apply each message exactly once."""

    def __init__(self, db: Database, js: JetStreamContext, *, durable: str, stream: Stream,
                 handlers: dict[str, Handler], model: type[ProcessedMessageMixin],
                 max_deliver: int = 20, batch: int = 100) -> None:
        self.db = db
        self.js = js
        self.durable = durable
        self.stream = stream
        self.handlers = handlers
        self.model = model
        self.max_deliver = max_deliver
        self.batch = batch
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopping = False
        self._fetching: asyncio.Future[list[Msg]] | None = None

    def stop(self) -> None:
        """Ends ``run`` after the batch under way (each message's transaction completes or never starts).

        A fetch waiting for messages ends at once rather than at its timeout; a message it was being
        handed is not acked, so it is redelivered to whoever runs next.
        """
        self._stopping = True
        if self._fetching is not None:
            self._fetching.cancel()

    async def ensure(self) -> None:
        """Creates the durable consumer, or updates it to the configuration in code."""
        config = ConsumerConfig(
            durable_name=self.durable, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30, max_deliver=self.max_deliver, filter_subjects=sorted(self.handlers),
        )
        await self.js.add_consumer(self.stream.name, config)
        self._sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream.name)

    async def run(self) -> None:
        if self._sub is None:
            await self.ensure()
        assert self._sub is not None
        while not self._stopping:
            self._fetching = asyncio.ensure_future(self._sub.fetch(self.batch, timeout=1))
            try:
                msgs = await self._fetching
            except (FetchTimeoutError, TimeoutError):
                continue  # an empty stream: normal
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._stopping and current is not None and not current.cancelling():
                    break  # stop() ended the fetch
                raise
            except Exception as err:  # noqa: BLE001 - NATS is away; the client reconnects
                log.warning("fetch failed", consumer=self.durable, error=one_line(err))
                await asyncio.sleep(1)
                continue
            finally:
                self._fetching = None
            for msg in msgs:
                if self._stopping:
                    break  # not acked: redelivered to whoever runs next
                await self.handle(msg)

    async def handle(self, msg: Msg) -> bool:
        """Applies one message at most once; returns True when this call applied it."""
        msg_id = (msg.headers or {}).get("Nats-Msg-Id") or f"{self.stream.name}:{msg.metadata.sequence.stream}"
        try:
            applied = await self.apply(msg_id, msg.subject, msg.data)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - retried, then terminated as poison
            delivered = msg.metadata.num_delivered
            if delivered >= self.max_deliver:
                log.error("poison message terminated", consumer=self.durable, msg_id=msg_id,
                          subject=msg.subject, error=one_line(err))
                HANDLED.labels(self.durable, "terminated").inc()
                await msg.term()
            else:
                log.warning("handler failed; will retry", consumer=self.durable, msg_id=msg_id,
                            subject=msg.subject, attempt=delivered, error=one_line(err))
                HANDLED.labels(self.durable, "retried").inc()
                await msg.nak(delay=min(0.5 * 2 ** delivered, 30))
            return False
        await msg.ack()
        HANDLED.labels(self.durable, "applied" if applied else "duplicate").inc()
        return applied

    async def apply(self, msg_id: str, subject: str, data: bytes) -> bool:
        """The transaction: record the id, run the handler; a known id changes nothing."""
        handler = self.handlers[subject]
        event = decode(subject, data)
        m = self.model
        async with self.db.transaction() as session:
            seen = await session.scalar(select(m.msg_id).where(m.consumer == self.durable, m.msg_id == msg_id))
            if seen is not None:
                return False
            session.add(m(consumer=self.durable, msg_id=msg_id, processed_at=utcnow()))
            await handler(session, event)
        return True
