"""Putting tags on customers and taking them off, with the timeline entry and event each change makes.

A customer never carries a tag twice: pairs are inserted with ``ON CONFLICT DO NOTHING`` and
only the pairs actually inserted (or deleted) are reported, recorded on the timeline
(``tag_added`` / ``tag_removed``, detail ``{"tag": name}``) and published
(``customer.tag.added.v1`` / ``customer.tag.removed.v1``). Concurrent taggers therefore
cannot make a duplicate, and a repeat is a no-op rather than an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.chunks import chunks
from services.common.db import dialect_of
from services.common.outbox import add_event
from services.common.validation import to_timestamp
from services.customer import timeline
from services.customer.classification.models import CustomerTag, Tag
from services.customer.models import OutboxEvent

BATCH = 300


def _record(session: AsyncSession, added: bool, customer_id: int, tag: Tag, actor_id: str, now: datetime) -> None:
    timeline.record(session, customer_id, "tag_added" if added else "tag_removed", actor_id, tag=tag.name)
    event_cls = events.CustomerTagged if added else events.CustomerUntagged
    add_event(session, OutboxEvent, event_cls(customer_id=str(customer_id), tag_id=str(tag.id), tag_name=tag.name,
                                              operator_id=actor_id, change_time=to_timestamp(now)))


async def add_tags(session: AsyncSession, customer_ids: Sequence[int], tags: Sequence[Tag], actor_id: str,
                   now: datetime) -> int:
    """Tags every customer with every tag; returns how many pairs were new."""
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    pairs = [{"customer_id": c, "tag_id": t.id, "created_at": now} for c in customer_ids for t in tags]
    inserted: list[tuple[int, int]] = []
    for batch in chunks(pairs, BATCH):
        stmt = (insert(CustomerTag).values(list(batch))
                .on_conflict_do_nothing(index_elements=[CustomerTag.customer_id, CustomerTag.tag_id])
                .returning(CustomerTag.customer_id, CustomerTag.tag_id))
        inserted += [(c, t) for c, t in (await session.execute(stmt)).all()]
    by_id = {t.id: t for t in tags}
    for customer_id, tag_id in sorted(inserted):
        _record(session, True, customer_id, by_id[tag_id], actor_id, now)
    return len(inserted)


async def remove_tags(session: AsyncSession, customer_ids: Sequence[int], tags: Sequence[Tag], actor_id: str,
                      now: datetime) -> int:
    """Takes every tag off every customer; returns how many pairs there were."""
    by_id = {t.id: t for t in tags}
    removed: list[tuple[int, int]] = []
    for batch in chunks(list(customer_ids), BATCH):
        stmt = (delete(CustomerTag).where(CustomerTag.customer_id.in_(batch), CustomerTag.tag_id.in_(list(by_id)))
                .returning(CustomerTag.customer_id, CustomerTag.tag_id))
        removed += [(c, t) for c, t in (await session.execute(stmt)).all()]
    for customer_id, tag_id in sorted(removed):
        _record(session, False, customer_id, by_id[tag_id], actor_id, now)
    return len(removed)


async def remove_all_tags(session: AsyncSession, customer_id: int, actor_id: str, now: datetime) -> int:
    """Takes every tag off one customer (it is being deleted)."""
    tags = (await session.scalars(select(Tag).join(CustomerTag, CustomerTag.tag_id == Tag.id)
                                  .where(CustomerTag.customer_id == customer_id))).all()
    return await remove_tags(session, [customer_id], tags, actor_id, now) if tags else 0


async def remove_tag_everywhere(session: AsyncSession, tag: Tag, actor_id: str, now: datetime) -> int:
    """Takes one tag off every customer carrying it (the tag is being deleted)."""
    removed = (await session.scalars(delete(CustomerTag).where(CustomerTag.tag_id == tag.id)
                                     .returning(CustomerTag.customer_id))).all()
    for customer_id in sorted(removed):
        _record(session, False, customer_id, tag, actor_id, now)
    return len(removed)
