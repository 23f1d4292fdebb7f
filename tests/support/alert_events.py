"""Publishing the events the alert service consumes, and waiting until it has applied them."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime

from google.protobuf.message import Message
from nats.js import JetStreamContext

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.common.events import subject_of
from services.common.validation import to_timestamp
from tests.support import waiting

_ids = itertools.count(1)


async def publish(js: JetStreamContext, message: Message) -> None:
    await js.publish(subject_of(message), message.SerializeToString(), headers={"Nats-Msg-Id": f"t{next(_ids)}"})


async def caught_up(js: JetStreamContext, stream: str, durable: str, timeout: float = 60.0) -> None:
    """``waiting.caught_up``, allowing the time a whole system's backlog of orders may take."""
    await waiting.caught_up(js, stream, durable, timeout)


async def mall(js: JetStreamContext, mall_id: str, name: str, timezone: str) -> None:
    await publish(js, customer_events.MallChanged(mall_id=mall_id, name=name, timezone=timezone))


async def store(js: JetStreamContext, store_id: str, mall_id: str, *, category: str = "", business_format: str = "",
                floor: str = "", tags: tuple[str, ...] = ()) -> None:
    await publish(js, customer_events.StoreChanged(
        store_id=store_id, mall_id=mall_id, name=f"门店{store_id}", category=category,
        business_format=business_format, floor=floor, tags=list(tags)))


async def order(js: JetStreamContext, order_id: str, member_id: str, mall_id: str, store_id: str, paid: int,
                when: datetime, channel: str = "ORDER_CHANNEL_POS") -> None:
    await publish(js, ledger_events.OrderRecorded(
        order_id=order_id, member_id=member_id, mall_id=mall_id, store_id=store_id, channel=channel, amount=paid,
        paid_amount=paid, occur_time=to_timestamp(when), record_time=to_timestamp(when)))


async def refund(js: JetStreamContext, order_id: str, member_id: str, mall_id: str, store_id: str, paid: int,
                 refunded_total: int, full: bool) -> None:
    await publish(js, ledger_events.OrderRefunded(
        refund_id=f"r{next(_ids)}", order_id=order_id, member_id=member_id, mall_id=mall_id, store_id=store_id,
        channel="ORDER_CHANNEL_POS", order_amount=paid, order_paid_amount=paid,
        total_refunded_amount=refunded_total, total_refunded_paid_amount=refunded_total, fully_refunded=full))


async def published(js: JetStreamContext, stream: str, subject: str, message_type: type[Message], check,
                    timeout: float = 30.0) -> None:
    """Returns once the newest ``subject`` message on ``stream`` passes ``check`` (an outbox relays in commit
    order, so everything committed before it is on the stream too)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            raw = await js.get_last_msg(stream, subject)
            message = message_type()
            message.ParseFromString(raw.data or b"")
            if check(message):
                return
        except Exception:  # noqa: BLE001 - nothing published on the subject yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject} did not reach {stream} in {timeout:.0f} s")
        await asyncio.sleep(0.02)
