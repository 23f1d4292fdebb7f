"""The transactional outbox: events commit with the change that caused them, then a relay publishes them.

``add_event`` writes an ``outbox_event`` row in the caller's transaction; ``add_events`` writes
many at once, for bulk work, with one driver-level INSERT. ``OutboxRelay``
reads unsent rows in order, publishes each to JetStream with ``Nats-Msg-Id`` = the row's
``msg_id`` and marks them sent. A crash between publish and mark republishes with the same
id, which the stream's duplicate window (and every consumer's dedupe) absorbs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Optional

from google.protobuf.message import Message
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge
from sqlalchemy import BigInteger, Connection, DateTime, Index, Integer, LargeBinary, String, select, text, update
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from services.common.bulk import Adds, add_row, insert_rows
from services.common.clock import utcnow
from services.common.db import Database
from services.common.events import subject_of
from services.common.logs import get_logger
from services.common.mapped import MappedMixin, table_of
from services.common.retry import one_line

log = get_logger(__name__)

PUBLISHED = Counter("crowdpack_outbox_published_total", "Outbox events published to JetStream", ["subject"])
UNSENT = Gauge("crowdpack_outbox_unsent", "Outbox events seen unsent on the last relay pass")

BIGINT_PK = BigInteger().with_variant(Integer(), "sqlite")
ACK_TIMEOUT_S = 10.0  # for a relay pass's acks; unacked rows stay unsent and go again next pass


class OutboxMixin(MappedMixin):
    """Columns of the ``outbox_event`` table; each service maps it on its own Base."""

    __tablename__ = "outbox_event"

    seq: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    @declared_attr.directive
    def __table_args__(cls) -> tuple:  # noqa: N805 - a declared_attr takes the class
        unsent = text("published_at IS NULL")
        return (Index("ix_outbox_event_unsent", "seq", sqlite_where=unsent, postgresql_where=unsent),
                # For retention (services/common/retention.py).
                Index("ix_outbox_event_published_at", "published_at"))

    def __repr__(self) -> str:
        return f"OutboxEvent(seq={self.seq}, subject={self.subject!r}, sent={self.published_at is not None})"


def add_event(session: Adds, model: type[OutboxMixin], message: Message) -> str:
    """Stages ``message`` for publishing when the caller's transaction commits; returns its msg id."""
    msg_id = uuid.uuid4().hex
    add_row(session, model, msg_id=msg_id, subject=subject_of(message), payload=message.SerializeToString(),
            created_at=utcnow())
    return msg_id


OUTBOX_COLUMNS = ("msg_id", "subject", "payload", "created_at")


def event_rows(messages: Iterable[Message], created_at: datetime) -> list[tuple[str, str, bytes, datetime]]:
    """Outbox rows (``OUTBOX_COLUMNS``) for ``messages``, in order.

    The msg ids are unique as ``uuid4().hex`` is (32 hex digits): one random 96-bit prefix per call
    and a counter, so bulk work makes no system call per event.
    """
    prefix = uuid.uuid4().hex[:24]
    subjects: dict[type[Message], str] = {}
    rows = []
    for n, message in enumerate(messages):
        kind = type(message)
        subject = subjects.get(kind)
        if subject is None:
            subject = subjects[kind] = subject_of(message)
        rows.append((f"{prefix}{n:08x}", subject, message.SerializeToString(), created_at))
    return rows


def add_events(session: Session | Connection, model: type[OutboxMixin], messages: Iterable[Message]) -> list[str]:
    """Writes ``messages`` as outbox rows, in order, in the caller's (synchronous) transaction; returns their msg ids.

    One driver-level INSERT for all of them, for bulk work (``add_event`` is one ORM object per
    event). The rows are written at once, not at the next flush; given a ``Session``, whatever it
    holds pending (events of ``add_event`` included) is flushed first, so events keep the order
    they were added in. From async code: ``await session.run_sync(lambda s: add_events(s, ...))``.
    """
    if isinstance(session, Session):
        session.flush()
        conn = session.connection()
    else:
        conn = session
    rows = event_rows(messages, utcnow())
    insert_rows(conn, table_of(model), OUTBOX_COLUMNS, rows)
    return [row[0] for row in rows]


class OutboxRelay:
    """Publishes committed outbox rows to JetStream in sequence order.

    On SQLite (one writer) sequence order is commit order. On PostgreSQL it is not quite: a
    transaction that took a lower ``seq`` may commit after one with a higher ``seq`` has been
    published, and its events then go out later; two relays (two replicas) may also publish
    the same rows (JetStream's duplicate window keeps one copy). Causally ordered changes keep
    their order: a change made after another committed always takes a higher sequence.
    """

    def __init__(self, db: Database, js: JetStreamContext, model: type[OutboxMixin], *,
                 poll_s: float = 0.5, batch: int = 200) -> None:
        self.db = db
        self.js = js
        self.model = model
        self.poll_s = poll_s
        self.batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        db.on_commit(self._wake.set)

    def stop(self) -> None:
        """Ends ``run`` after the pass under way (a transaction is never cut in the middle)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - NATS or the database is away; try again soon
                log.warning("outbox relay pass failed", error=one_line(err))
                sent = 0
            if sent < self.batch and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                except TimeoutError:
                    pass

    async def relay_once(self) -> int:
        """Publishes one batch of unsent events; returns how many it sent."""
        t = table_of(self.model)
        # Table statements, not ORM ones, each read and write in one hop (``run_sync_read``/``run_sync_write``:
        # on SQLite a thread with the synchronous driver): a busy relay makes many passes, and the ORM's compile
        # step and the asynchronous driver's round trips per statement would add to each.
        unsent = (select(t.c.seq, t.c.msg_id, t.c.subject, t.c.payload)
                  .where(t.c.published_at.is_(None)).order_by(t.c.seq).limit(self.batch))
        rows = await self.db.run_sync_read(lambda session: session.execute(unsent).all())
        UNSENT.set(len(rows))
        if not rows:
            return 0
        # Sent one after another on one connection (the order holds), then the acks are awaited together:
        # no request, task and timer per message.
        acks: list[asyncio.Future] = []
        try:
            for row in rows:
                acks.append(await self.js.publish_async(row.subject, row.payload, headers={"Nats-Msg-Id": row.msg_id}))
            results = await asyncio.wait_for(asyncio.gather(*acks, return_exceptions=True), timeout=ACK_TIMEOUT_S)
        except BaseException:
            for ack in acks:  # an ack never awaited would hold its slot of the client's pending limit for good
                ack.cancel()
            raise
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        for row in rows:
            PUBLISHED.labels(row.subject).inc()
        sent = update(t).where(t.c.seq.in_([r.seq for r in rows])).values(published_at=utcnow())
        await self.db.run_sync_write(lambda session: session.execute(sent))
        return len(rows)
