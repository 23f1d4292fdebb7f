"""The customer timeline: every change to a customer, with its actor and time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import Adds
from services.common.clock import utcnow
from services.customer.models import TimelineEntry


def record(session: Adds, customer_id: int, kind: str, actor_id: str, **detail: Any) -> None:
    """Adds a timeline entry in the caller's transaction."""
    session.add(TimelineEntry(customer_id=customer_id, kind=kind, actor_id=actor_id,
                              detail=json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True),
                              created_at=utcnow()))


async def entries(session: AsyncSession, customer_id: int, limit: int, before: int | None) -> Sequence[TimelineEntry]:
    """Up to ``limit`` of a customer's entries, newest first, below entry ``before`` if given."""
    query = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id) \
        .order_by(TimelineEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(TimelineEntry.id < before)
    return (await session.scalars(query)).all()
