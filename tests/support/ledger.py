"""What the ledger tests share: a handle on a running ledger service, and helpers to wait and to check refusals.

The ``ledger`` fixture that starts the service is in tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.errors import field_of
from services.common.events import decode
from services.common.server import Runtime
from services.ledger.models import MallState, MemberMall, MemberState, StoreState
from tests.support.waiting import eventually

# The malls the ledger tests name, with their stores. The ledger refuses ids the customer service never announced.
TEST_MALLS = {"100": ("1", "2", "7", "9"), "200": ("5", "8", "31"), "300": ()}


@dataclass
class Ledger:
    runtime: Runtime
    stub: pb_grpc.LedgerServiceStub
    js: JetStreamContext
    _seq: int = 0

    async def announce(self, subject: str, event: Message) -> None:
        self._seq += 1
        await self.js.publish(subject, event.SerializeToString(),
                              headers={"Nats-Msg-Id": f"test-{subject}-{self._seq}"})

    async def open_members(self, *member_ids: str, level: int = 0, registration_mall_id: str = "") -> None:
        """Announces members as the customer service would, and waits for their accounts (and their
        registration mall, when one is named)."""
        for member in member_ids:
            await self.announce("customer.member.created.v1", customer_events.MemberCreated(
                member_id=member, level=level, registration_mall_id=registration_mall_id))
        for member in member_ids:
            await eventually(lambda m=member: self.stub.GetBalances(pb.GetBalancesRequest(member_id=m)))
            if registration_mall_id:
                await eventually(lambda m=member: self.related(m, registration_mall_id))

    async def related(self, member_id: str, mall_id: str) -> bool:
        """Whether the ledger has stored that the customer service related the member to the mall."""
        async with self.runtime.ctx.db.read() as session:
            return await session.get(MemberMall, (member_id, mall_id)) is not None

    async def open_mall(self, mall_id: str, *store_ids: str) -> None:
        """Announces a mall and its stores as the customer service would, and waits until the ledger knows them."""
        now = timestamp(datetime.now(UTC))
        await self.announce("customer.mall.changed.v1", customer_events.MallChanged(
            mall_id=mall_id, name=f"Mall {mall_id}", timezone="Asia/Shanghai", change_time=now))
        for store_id in store_ids:
            await self.announce("customer.store.changed.v1", customer_events.StoreChanged(
                store_id=store_id, mall_id=mall_id, name=f"Store {store_id}", change_time=now))

        async def known() -> bool:
            async with self.runtime.ctx.db.read() as session:
                mall = await session.get(MallState, mall_id)
                stores = [await session.get(StoreState, s) for s in store_ids]
            return mall is not None and all(s is not None and s.mall_id == mall_id for s in stores)

        await eventually(known)

    async def open_malls(self) -> None:
        """Opens the malls and stores the ledger tests name (``TEST_MALLS``)."""
        for mall_id, store_ids in TEST_MALLS.items():
            await self.open_mall(mall_id, *store_ids)

    async def set_status(self, member_id: str, *, disabled: bool) -> None:
        """Announces a member's status as the customer service would, and waits until the ledger has stored it."""
        await self.announce("customer.member.status_changed.v1", customer_events.MemberStatusChanged(
            member_id=member_id, disabled=disabled, change_time=timestamp(datetime.now(UTC))))

        async def applied() -> bool:
            async with self.runtime.ctx.db.read() as session:
                state = await session.get(MemberState, member_id)
                return state is not None and state.disabled == disabled

        await eventually(applied)  # the ledger has stored it: what a test then asserts does not race the event

    async def balance(self, member_id: str, asset: int) -> pb.Account:
        reply = await self.stub.GetBalances(pb.GetBalancesRequest(member_id=member_id, asset=asset))
        return reply.accounts[0]

    async def post(self, request_id: str, member_id: str, asset: int, kind: int, amount: int,
                   **fields: Any) -> pb.Entry:
        posting = pb.Posting(member_id=member_id, asset=asset, kind=kind, amount=amount, **fields)
        reply = await self.stub.PostEntry(pb.PostEntryRequest(request_id=request_id, posting=posting))
        return reply.entry


def timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def ago(**delta: float) -> Timestamp:
    return timestamp(datetime.now(UTC) - timedelta(**delta))


async def refused(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str | None]:
    """The status code and the field of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), field_of(info.value)


async def ledger_events(js: JetStreamContext, subject: str | None = None) -> list[Message]:
    """Every event on the LEDGER stream (optionally of one subject), decoded, in order."""
    info = await js.stream_info("LEDGER")
    found: list[Message] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg("LEDGER", seq)
        if subject is None or msg.subject == subject:
            found.append(decode(msg.subject, msg.data))
    return found


async def wait_for_events(js: JetStreamContext, subject: str, count: int, timeout: float = 10.0) -> list[Message]:
    async def enough() -> list[Message]:
        found = await ledger_events(js, subject)
        assert len(found) >= count, f"{len(found)} of {count} {subject} events"
        return found

    return await eventually(enough, timeout)
