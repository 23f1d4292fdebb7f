"""Idempotent JetStream consumers: durable pull, explicit ack, dedupe in the same transaction as the effect.

``EventConsumer`` applies each fetched batch in one write transaction (``batched``, the default):
it reads which of the batch's message ids ``processed_message`` already holds, records the new
ones together and runs the handlers on the new messages in stream order (a ``batch_handler``, when
given, gets them all at once and can read what they need in bulk). All of it commits together,
then every message of the batch is acked. A ``sync_batch_handler`` (a synchronous function of a
``Session``) takes the batch in ``Database.run_sync_write`` instead: the dedupe read, the dedupe rows
(one bulk statement) and the handler run as one transaction in one hop to the writer (on SQLite its
thread and the synchronous driver, rather than a thread crossing per statement). A redelivery (after
a crash before the ack, or a republish) finds its id recorded and is acked without effect.

If anything in the batch fails, the batch's transaction rolls back (nothing of it applied) and
the batch is applied again one message per transaction: the poison message is isolated, the
others apply once each. A failing message is nak'ed with a growing delay and terminated after
``max_deliver`` attempts (logged as poison). ``batched=False`` keeps one transaction per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from prometheus_client import Counter
from sqlalchemy import DateTime, Select, String, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.common.bulk import insert_rows
from services.common.chunks import IN_LIST, chunks, padded
from services.common.clock import utcnow
from services.common.db import Database
from services.common.events import Stream, decode
from services.common.logs import get_logger
from services.common.mapped import MappedMixin, table_of
from services.common.retry import one_line

log = get_logger(__name__)

HANDLED = Counter("crowdpack_consumer_messages_total", "Messages a consumer handled", ["consumer", "outcome"])

# A handler takes the message class its subject carries (events.SUBJECT_TYPES): a concrete protobuf type per
# subject, which one dict of handlers cannot state to the type checker, hence Any.
Handler = Callable[[AsyncSession, Any], Awaitable[None]]
# The new messages of a batch as (subject, event), in stream order, applied in the caller's transaction.
BatchHandler = Callable[[AsyncSession, Sequence[tuple[str, Any]]], Awaitable[None]]
# The same, synchronous, in ``Database.run_sync_write``'s transaction.
SyncBatchHandler = Callable[[Session, Sequence[tuple[str, Any]]], None]


class ProcessedMessageMixin(MappedMixin):
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
                 max_deliver: int = 20, batch: int = 100, batched: bool = True,
                 batch_handler: BatchHandler | None = None,
                 sync_batch_handler: SyncBatchHandler | None = None) -> None:
        self.db = db
        self.js = js
        self.durable = durable
        self.stream = stream
        self.handlers = handlers
        self.model = model
        self.max_deliver = max_deliver
        self.batch = batch
        self.batched = batched
        self.batch_handler = batch_handler
        self.sync_batch_handler = sync_batch_handler
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopping = False
        self._fetching: asyncio.Future[list[Msg]] | None = None
        self._known: Select[tuple[str]] | None = None

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
            # A whole batch may be out unacked (the server's default allows 1,000).
            max_ack_pending=max(1_000, self.batch),
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
            if self.batched and len(msgs) > 1:
                await self.handle_batch(msgs)
                continue
            for msg in msgs:
                if self._stopping:
                    break  # not acked: redelivered to whoever runs next
                await self.handle(msg)

    def _msg_id(self, msg: Msg) -> str:
        return (msg.headers or {}).get("Nats-Msg-Id") or f"{self.stream.name}:{msg.metadata.sequence.stream}"

    async def handle_batch(self, msgs: Sequence[Msg]) -> int:
        """Applies a fetched batch in one transaction, then acks it; returns how many messages it applied.

        On any failure the batch is applied again one message per transaction (``handle``), so
        a poison message is retried and terminated alone and the others apply once each.
        """
        try:
            applied = await self.apply_batch([(self._msg_id(m), m.subject, m.data) for m in msgs])
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - isolated below, one message per transaction
            log.warning("batch failed; applying its messages one by one", consumer=self.durable, messages=len(msgs),
                        error=one_line(err))
            done = 0
            for msg in msgs:
                if self._stopping:
                    break  # not acked: redelivered to whoever runs next
                done += await self.handle(msg)
            return done
        for msg, was_applied in zip(msgs, applied, strict=True):
            await msg.ack()
            HANDLED.labels(self.durable, "applied" if was_applied else "duplicate").inc()
        return sum(applied)

    async def apply_batch(self, items: Sequence[tuple[str, str, bytes]]) -> list[bool]:
        """The batch's transaction: (msg id, subject, data) in stream order; says which of them it applied.

        A message id recorded before, or seen earlier in the same batch, changes nothing.
        """
        events = [(msg_id, subject, decode(subject, data)) for msg_id, subject, data in items]
        if self.sync_batch_handler is not None:
            handler = self.sync_batch_handler
            return await self.db.run_sync_write(lambda session: self._apply_batch_sync(session, events, handler))
        m = self.model
        async with self.db.transaction() as session:
            seen: set[str] = set()
            for chunk in chunks(sorted({msg_id for msg_id, _, _ in events}), IN_LIST):
                seen.update(await session.scalars(select(m.msg_id).where(m.consumer == self.durable,
                                                                         m.msg_id.in_(chunk))))
            applied, new = [], []
            for msg_id, subject, event in events:
                fresh = msg_id not in seen
                seen.add(msg_id)
                applied.append(fresh)
                if fresh:
                    new.append((msg_id, subject, event))
            if new:
                now = utcnow()
                await session.execute(insert(m), [{"consumer": self.durable, "msg_id": msg_id, "processed_at": now}
                                                  for msg_id, _, _ in new])
                if self.batch_handler is not None:
                    await self.batch_handler(session, [(subject, event) for _, subject, event in new])
                else:
                    for _, subject, event in new:
                        await self.handlers[subject](session, event)
        return applied

    def _apply_batch_sync(self, session: Session, events: Sequence[tuple[str, str, Any]],
                          handler: SyncBatchHandler) -> list[bool]:
        m = self.model
        seen: set[str] = set()
        conn = session.connection()
        for chunk in chunks(sorted({msg_id for msg_id, _, _ in events}), IN_LIST):
            seen.update(conn.scalars(self._known_statement(), {"consumer": self.durable, "ids": padded(chunk)}))
        applied, new = [], []
        for msg_id, subject, event in events:
            fresh = msg_id not in seen
            seen.add(msg_id)
            applied.append(fresh)
            if fresh:
                new.append((msg_id, subject, event))
        if new:
            now = utcnow()
            insert_rows(session.connection(), table_of(m), ("consumer", "msg_id", "processed_at"),
                        [(self.durable, msg_id, now) for msg_id, _, _ in new])
            handler(session, [(subject, event) for _, subject, event in new])
        return applied

    def _known_statement(self) -> Select[tuple[str]]:
        """Which of some message ids (``ids``, expanding) this consumer recorded: a table statement, built once."""
        if self._known is None:
            t = table_of(self.model)
            self._known = select(t.c.msg_id).where(t.c.consumer == bindparam("consumer"),
                                                   t.c.msg_id.in_(bindparam("ids", expanding=True)))
        return self._known

    async def handle(self, msg: Msg) -> bool:
        """Applies one message at most once; returns True when this call applied it."""
        msg_id = self._msg_id(msg)
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
