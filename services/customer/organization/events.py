"""The mall and store events the customer service publishes (through the outbox, in the caller's transaction).

Each carries the whole current state (consumers upsert it), and one is written on every create,
update and delete; migration ``scope_0008_store_brand`` announced the malls and stores that existed
before these events did.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.outbox import add_event
from services.common.validation import to_timestamp
from services.customer.models import OutboxEvent
from services.customer.organization.models import Mall, Store


def mall_changed_event(mall: Mall, when: datetime, *, deleted: bool = False) -> events.MallChanged:
    return events.MallChanged(mall_id=str(mall.id), name=mall.name, timezone=mall.timezone, deleted=deleted,
                              change_time=to_timestamp(when))


def store_changed_event(store: Store, when: datetime, *, deleted: bool = False) -> events.StoreChanged:
    return events.StoreChanged(
        store_id=str(store.id), mall_id=str(store.mall_id), name=store.name, category=store.category,
        business_format=store.business_format, floor=store.floor, tags=[t for t in store.tags.split(",") if t],
        brand=store.brand, deleted=deleted, change_time=to_timestamp(when))


def mall_changed(session: AsyncSession, mall: Mall, when: datetime, *, deleted: bool = False) -> None:
    add_event(session, OutboxEvent, mall_changed_event(mall, when, deleted=deleted))


def store_changed(session: AsyncSession, store: Store, when: datetime, *, deleted: bool = False) -> None:
    add_event(session, OutboxEvent, store_changed_event(store, when, deleted=deleted))
