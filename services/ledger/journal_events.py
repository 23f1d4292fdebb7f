"""The journal's events: ``ledger.entry.posted`` per entry, ``ledger.entries.posted`` for a batch posting's entries,
and events staged in a transaction to be written together at its end."""

from __future__ import annotations

from datetime import datetime
from itertools import groupby
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.chunks import chunks
from services.common.outbox import add_events
from services.common.validation import to_timestamp
from services.ledger.models import OutboxEvent
from services.ledger.postings import ASSET_NAMES, KIND_NAMES, Posted

ENTRIES_PER_EVENT = 1000  # entries per ledger.entries.posted event (about 150 kB; NATS takes up to 1 MB)
STAGED = "ledger_staged_events"  # session.info key: the events staged, in order


def stage_event(session: AsyncSession | Session, message: Message) -> None:
    """Stages an event for ``write_staged_events``, which writes the staged events in order with one INSERT."""
    session.info.setdefault(STAGED, []).append(message)


async def write_staged_events(session: AsyncSession) -> None:
    """Writes the events ``stage_event`` staged, in staging order (``add_events``)."""
    staged = session.info.pop(STAGED, [])
    if staged:
        await session.run_sync(lambda s: add_events(s, OutboxEvent, staged))


def entry_events(pending: list[Posted], together: set[str], now: datetime) -> list[Message]:
    """One ``ledger.entry.posted`` per entry; a ``together`` request's entries in ``ledger.entries.posted``."""
    create_time = to_timestamp(now)
    messages: list[Message] = []
    for request_id, group in groupby(pending, key=lambda e: e.request_id):
        if request_id not in together:
            messages += [entry_event(entry, create_time) for entry in group]
            continue
        for part in chunks(list(group), ENTRIES_PER_EVENT):
            batch = events.EntriesPosted()
            for entry in part:
                batch.entries.add(**entry_fields(entry, create_time))
            messages.append(batch)
    return messages


def entry_fields(entry: Posted, create_time: Any = None) -> dict[str, Any]:
    """What ``ledger.entry.posted`` carries for ``entry``, as ``EntryPosted`` keyword arguments."""
    p = entry.posting
    return dict(
        entry_id=str(entry.id), request_id=entry.request_id, line=entry.line, account_id=str(entry.account_id),
        member_id=entry.member_id, asset=ASSET_NAMES[entry.asset], kind=KIND_NAMES[p.kind], amount=p.amount,
        balance_after=entry.balance_after, mall_id=p.mall_id, store_id=p.store_id, operator_id=entry.operator_id,
        order_id=str(p.order_id) if p.order_id else "",
        reason_template_id=str(p.reason_template_id) if p.reason_template_id else "", reason=p.reason,
        reversal_of_entry_id=str(p.reversal_of_id) if p.reversal_of_id else "",
        create_time=create_time or to_timestamp(entry.created_at), document_time=to_timestamp(p.document_at),
        points_debt_after=entry.debt_after if entry.asset == pb.ASSET_POINTS else 0)


def entry_event(entry: Posted, create_time: Any = None) -> events.EntryPosted:
    return events.EntryPosted(**entry_fields(entry, create_time))
