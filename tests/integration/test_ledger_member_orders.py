"""A member's orders (消费详情): a paged list filtered by mall, store, brand, channel and time, in the caller's
scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller, Role
from services.ledger.models import StoreState
from tests.support.identity import signed
from tests.support.ledger import eventually, refused, timestamp

POS, ONLINE, FAST = pb.ORDER_CHANNEL_POS, pb.ORDER_CHANNEL_ONLINE, pb.ORDER_CHANNEL_FAST_POINTS
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def branded_store(ledger, store_id: str, mall_id: str, brand: str) -> None:
    await ledger.announce("customer.store.changed.v1", customer_events.StoreChanged(
        store_id=store_id, mall_id=mall_id, name=f"{brand} {store_id}号店", brand=brand,
        change_time=timestamp(datetime.now(UTC))))

    async def known() -> bool:
        async with ledger.runtime.ctx.db.read() as session:
            row = await session.get(StoreState, store_id)
        return row is not None and row.brand == brand

    await eventually(known)


async def record(ledger, number: str, member: str, mall: str, store: str, channel: int, days: int) -> None:
    await ledger.stub.RecordOrder(pb.RecordOrderRequest(
        request_id=f"o-{number}", member_id=member, mall_id=mall, store_id=store, channel=channel,
        external_order_no=number, amount=1_000 + days, paid_amount=1_000,
        occur_time=timestamp(T0 + timedelta(days=days))))


async def numbers(ledger, **fields) -> list[str]:
    reply = await ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="1", **fields))
    return [o.external_order_no for o in reply.orders]


async def test_a_members_orders_filter_by_mall_store_brand_channel_and_time(ledger):
    await ledger.open_malls()
    await branded_store(ledger, "1", "100", "海底捞")
    await branded_store(ledger, "2", "100", "星巴克")
    await branded_store(ledger, "5", "200", "海底捞")
    await ledger.open_members("1", "2", registration_mall_id="100")
    await record(ledger, "A", "1", "100", "1", POS, 0)
    await record(ledger, "B", "1", "100", "2", ONLINE, 1)
    await record(ledger, "C", "1", "200", "5", POS, 2)
    await record(ledger, "D", "1", "100", "1", FAST, 3)
    await record(ledger, "E", "2", "100", "1", POS, 4)  # another member's

    first = await ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="1", page_size=3))
    assert [o.external_order_no for o in first.orders] == ["D", "C", "B"] and first.next_page_token
    d = first.orders[0]
    assert (d.mall_id, d.store_id, d.store_name, d.brand, d.channel) == ("100", "1", "海底捞 1号店", "海底捞", FAST)
    second = await ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(
        member_id="1", page_size=3, page_token=first.next_page_token))
    assert [o.external_order_no for o in second.orders] == ["A"] and not second.next_page_token

    assert await numbers(ledger, brand="海底捞") == ["D", "C", "A"]
    assert await numbers(ledger, brand="海底捞", mall_id="100") == ["D", "A"]
    assert await numbers(ledger, store_id="2") == ["B"]
    assert await numbers(ledger, channels=[POS, FAST]) == ["D", "C", "A"]
    assert await numbers(ledger, start_time=timestamp(T0 + timedelta(days=1)),
                         end_time=timestamp(T0 + timedelta(days=3))) == ["C", "B"]
    assert await numbers(ledger, brand="海") == []

    # A token belongs to the filters it was made with.
    assert await refused(ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(
        member_id="1", page_size=3, page_token=first.next_page_token, brand="海底捞"))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    for bad, field in [(dict(page_size=-1), "page_size"), (dict(channels=[99]), "channels[0]"),
                       (dict(start_time=timestamp(T0), end_time=timestamp(T0)), "end_time"),
                       (dict(mall_id="x"), "mall_id"), (dict(brand="a\x00b"), "brand")]:
        assert await refused(ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="1", **bad))) == (
            grpc.StatusCode.INVALID_ARGUMENT, field), bad
    assert await refused(ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="404"))) == (
        grpc.StatusCode.NOT_FOUND, "member_id")


async def test_a_members_orders_follow_the_callers_scope(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")
    await ledger.open_members("3")
    await record(ledger, "F", "1", "100", "1", POS, 0)
    admin_200 = signed(Caller(staff_id="w", role=Role.MALL_ADMIN, mall_ids=frozenset({"200"})))
    sales = signed(Caller(staff_id="s", role=Role.SALES))
    for who in (admin_200, sales):
        code, _ = await refused(ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="1"), metadata=who))
        assert code == grpc.StatusCode.PERMISSION_DENIED
    admin_100 = signed(Caller(staff_id="l", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))
    reply = await ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="1"), metadata=admin_100)
    assert [o.external_order_no for o in reply.orders] == ["F"]
    me = signed(Caller(staff_id="1", role=Role.MEMBER))
    assert len((await ledger.stub.ListMemberOrders(pb.ListMemberOrdersRequest(member_id="1"), metadata=me)).orders) == 1
