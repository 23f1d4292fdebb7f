"""The customer timeline: every change to a customer, with its actor and time.

An entry's detail is a JSON object whose fields keep one type whatever the kind (``detail``):
ids (``*_id``, and a changed id field's ``from`` and ``to``) are strings, "" when none; an
attribute change names ``field`` with ``from`` and ``to``; amounts (``*_fen``, points) are integers.
Migration ``docgaps_0010_timeline_types`` brought stored entries to the same types.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import ledger_events_pb2 as events
from services.common.bulk import Adds, add_row
from services.common.clock import utcnow
from services.customer.models import TimelineEntry

# A manual adjustment of an asset, as the ledger announces it (ENTRY_KIND_ADJUST, no order).
ADJUSTED = "adjusted"


def _is_id(key: str) -> bool:
    return key == "id" or key.endswith("_id")


# Which field names are ids, remembered: details use a few dozen names, and a batch writes thousands of entries.
_ID_KEYS: dict[str, bool] = {}


def _id_key(key: str) -> bool:
    found = _ID_KEYS.get(key)
    if found is None:
        found = _ID_KEYS[key] = _is_id(key)
    return found


def _id_text(value: Any) -> str:
    return "" if value is None else str(value)


def detail(**fields: Any) -> dict[str, Any]:
    """The detail with each field in its one type: ids as strings ("" for none), the rest as given."""
    out = {k: _id_text(v) if _id_key(k) else v for k, v in fields.items()}
    if _is_id(str(out.get("field", ""))):
        for side in ("from", "to"):
            if side in out:
                out[side] = _id_text(out[side])
    return out


# ``json.dumps`` with options builds an encoder per call; one kept serves every entry alike.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True)


def detail_json(**fields: Any) -> str:
    """The stored form of ``detail``: what ``record`` writes, also for bulk writers (the import)."""
    return _ENCODER.encode(detail(**fields))


def record(session: Adds, customer_id: int, kind: str, actor_id: str, **fields: Any) -> None:
    """Adds a timeline entry in the caller's transaction."""
    add_row(session, TimelineEntry, customer_id=customer_id, kind=kind, actor_id=actor_id,
            detail=detail_json(**fields), created_at=utcnow())


def adjustment(session: Adds, customer_id: int, entry: events.EntryPosted) -> None:
    """A manual points, balance or red-packet adjustment the ledger posted, by its operator, at its time."""
    add_row(session, TimelineEntry,
            customer_id=customer_id, kind=ADJUSTED, actor_id=entry.operator_id or "system",
            detail=detail_json(entry_id=entry.entry_id, asset=entry.asset, amount=entry.amount,
                               balance_after=entry.balance_after, mall_id=entry.mall_id, store_id=entry.store_id,
                               reason=entry.reason, reason_template_id=entry.reason_template_id),
            created_at=entry.create_time.ToDatetime(tzinfo=UTC) if entry.HasField("create_time") else utcnow())


async def entries(session: AsyncSession, customer_id: int, limit: int, before: int | None) -> Sequence[TimelineEntry]:
    """Up to ``limit`` of a customer's entries, newest first, below entry ``before`` if given."""
    query = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id) \
        .order_by(TimelineEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(TimelineEntry.id < before)
    return (await session.scalars(query)).all()
