"""What the alert service learns from other services' events, each applied in the consumer's transaction.

- ``ledger.order.recorded.v1`` / ``ledger.order.refunded.v1``: the order windows (not online orders, the
  last 90 days), and for a new order the evaluation of the mall's rules for its member.
- ``customer.mall.changed.v1`` / ``customer.store.changed.v1``: the projection of malls (time zones) and
  stores (category, format, floor, tags) that rules' store scopes follow.
- ``customer.member.created / status_changed / updated.v1``: virtual members (never alerted), disabled
  members and store members (list filters).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.alert.models import MallView, MemberView, ProcessedMessage, StoreView
from services.alert.ordering import apply_orders
from services.alert.repository import bump_mall, close_open_alerts
from services.alert.rules import RuleCache
from services.common.clock import Clock, utcnow
from services.common.consumer import EventConsumer, Handler
from services.common.db import Database
from services.common.events import (
    CUSTOMER_STREAM,
    LEDGER_STREAM,
    MALL_CHANGED,
    MEMBER_CREATED,
    MEMBER_STATUS_CHANGED,
    MEMBER_UPDATED,
    ORDER_RECORDED,
    ORDER_REFUNDED,
    STORE_CHANGED,
)
from services.common.validation import aware


class OrderHandlers:
    """The order events, each applied alone (``recorded``, ``refunded``) or a consumer's batch at once."""

    def __init__(self, cache: RuleCache, clock: Clock = utcnow) -> None:
        self.cache = cache
        self.clock = clock

    async def recorded(self, session: AsyncSession, event: ledger_events.OrderRecorded) -> None:
        now = self.clock()
        await session.run_sync(lambda s: apply_orders(s, self.cache, [event], now))

    async def refunded(self, session: AsyncSession, event: ledger_events.OrderRefunded) -> None:
        now = self.clock()
        await session.run_sync(lambda s: apply_orders(s, self.cache, [event], now))

    def batch(self, session: Session, items: Sequence[tuple[str, Message]]) -> None:
        apply_orders(session, self.cache, [event for _, event in items], self.clock())  # type: ignore[misc]  # order events


def _stale(held: datetime | None, event_time: Timestamp) -> bool:
    """An event older than the state held (a redelivery after a newer one) changes nothing."""
    return held is not None and event_time.ByteSize() > 0 and aware(event_time.ToDatetime()) < aware(held)


def _time(event_time: Timestamp) -> datetime | None:
    return aware(event_time.ToDatetime()) if event_time.ByteSize() > 0 else None


async def mall_changed(session: AsyncSession, event: customer_events.MallChanged) -> None:
    held = await session.get(MallView, event.mall_id)
    if held is not None and _stale(held.changed_at, event.change_time):
        return
    mall = await bump_mall(session, event.mall_id)
    mall.name, mall.deleted = event.name, event.deleted
    mall.timezone = event.timezone or "Asia/Shanghai"
    mall.changed_at = _time(event.change_time)


async def store_changed(session: AsyncSession, event: customer_events.StoreChanged) -> None:
    store = await session.get(StoreView, event.store_id)
    if store is None:
        store = StoreView(store_id=event.store_id)
        session.add(store)
    elif _stale(store.changed_at, event.change_time):
        return
    elif store.mall_id != event.mall_id:
        await bump_mall(session, store.mall_id)
    store.mall_id, store.name, store.category = event.mall_id, event.name, event.category
    store.business_format, store.floor, store.tags = event.business_format, event.floor, sorted(set(event.tags))
    store.deleted, store.changed_at = event.deleted, _time(event.change_time)
    await bump_mall(session, event.mall_id)


async def _member(session: AsyncSession, member_id: str) -> MemberView:
    member = await session.get(MemberView, member_id)
    if member is None:
        member = MemberView(member_id=member_id, virtual=False, disabled=False, store_member=False, deleted=False)
        session.add(member)
    return member


async def member_created(session: AsyncSession, event: customer_events.MemberCreated) -> None:
    member = await _member(session, event.member_id)
    member.virtual, member.store_member = event.virtual, event.store_member


async def member_status_changed(session: AsyncSession, event: customer_events.MemberStatusChanged) -> None:
    member = await _member(session, event.member_id)
    member.virtual, member.deleted, member.store_member = event.virtual, event.deleted, event.store_member
    member.disabled = event.disabled
    if event.disabled:
        await close_open_alerts(session, event.member_id, pb.ALERT_STATE_MEMBER_DISABLED)


async def member_updated(session: AsyncSession, event: customer_events.MemberUpdated) -> None:
    if {"store_member", "phone"} & set(event.changed_fields):
        member = await _member(session, event.member_id)
        member.store_member = event.store_member


def order_consumer(db: Database, js: JetStreamContext, cache: RuleCache, clock: Clock = utcnow,
                   **options: Any) -> EventConsumer:
    handlers = OrderHandlers(cache, clock)
    table: dict[str, Handler] = {ORDER_RECORDED: handlers.recorded, ORDER_REFUNDED: handlers.refunded}
    # A fetched batch's orders apply together (one read of each member's windows and rules) in one hop to the
    # writer, tested equal to applying them one at a time.
    options.setdefault("sync_batch_handler", handlers.batch)
    # Batches of up to 2,000: more orders share a batch's reads, its commit and the inner pages of the window index
    # it rewrites (a page is written once per commit). A replay of a million orders ran at 0.53-0.54x the
    # do-nothing consumer's rate, against 0.49-0.51x in batches of 500 (docs/benchmarks.md). A fetch returns what
    # is there, so a quiet stream still goes one order at a time.
    options.setdefault("batch", 2_000)
    return EventConsumer(db, js, durable="alert-ledger-orders", stream=LEDGER_STREAM, handlers=table,
                         model=ProcessedMessage, **options)


def customer_consumer(db: Database, js: JetStreamContext) -> EventConsumer:
    table: dict[str, Handler] = {
        MALL_CHANGED: mall_changed, STORE_CHANGED: store_changed, MEMBER_CREATED: member_created,
        MEMBER_STATUS_CHANGED: member_status_changed, MEMBER_UPDATED: member_updated}
    return EventConsumer(db, js, durable="alert-customer-events", stream=CUSTOMER_STREAM, handlers=table,
                         model=ProcessedMessage)
