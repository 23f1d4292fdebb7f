"""The customer service keeps member stats, interaction malls, orders and levels from ledger events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from crowdpack.customer.v1 import level_service_pb2 as level_pb
from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.events.v1 import ledger_events_pb2 as events
from services.common.events import (
    MEMBER_ACTIVITY_CHANGED,
    MEMBERS_ACTIVITY_CHANGED,
    ORDER_RECORDED,
    ORDER_REFUNDED,
    VOUCHER_REDEEMED,
)
from services.customer import ledger_projection
from services.customer.models import MemberOrder, OutboxEvent
from tests.support.customer import SUPER
from tests.support.waiting import caught_up, eventually

pytestmark = pytest.mark.database("customer")


def ts(day: int) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(datetime(2026, 10, day, 12, tzinfo=UTC))
    return out


async def publish(js, subject: str, message, msg_id: str) -> None:
    await js.publish(subject, message.SerializeToString(), headers={"Nats-Msg-Id": msg_id})


async def member_when(stub, member_id: str, predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        member = (await stub.GetMember(pb.GetMemberRequest(member_id=member_id))).member
        if predicate(member) or asyncio.get_running_loop().time() > deadline:
            return member
        await asyncio.sleep(0.05)


async def test_orders_refunds_and_entries_update_the_member(customer, js):
    home, other = await customer.mall("Home"), await customer.mall("Other")
    await customer.levels.CreateLevel(level_pb.CreateLevelRequest(request_id="l1", level=level_pb.Level(
        number=1, name="Silver", discount_permille=950, upgrade_mode=level_pb.UPGRADE_MODE_AUTOMATIC,
        upgrade_spend_fen=50_000)), metadata=SUPER)
    member = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="m", phone="13500000001", registration_mall_id=home), metadata=SUPER)).member
    mid = member.member_id
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="1", member_id=mid, mall_id=other, store_id="7", channel="ORDER_CHANNEL_POS", amount=30_000,
        paid_amount=28_000, occur_time=ts(3)), "o1")
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="2", member_id=mid, mall_id=home, store_id="8", channel="ORDER_CHANNEL_LIGHTNING_PAY", amount=25_000,
        paid_amount=25_000, occur_time=ts(9)), "o2")
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(order_id="2", member_id=mid, amount=25_000,
                                                                        occur_time=ts(9)), "o2-again")
    await publish(js, "ledger.entry.posted.v1", events.EntryPosted(
        entry_id="10", member_id=mid, asset="ASSET_POINTS", kind="ENTRY_KIND_EARN", amount=300, balance_after=300,
        order_id="1"), "e10")
    await publish(js, "ledger.entry.posted.v1", events.EntryPosted(
        entry_id="9", member_id=mid, asset="ASSET_POINTS", kind="ENTRY_KIND_EARN", amount=100, balance_after=100,
        order_id="1"), "e9-late")
    m = await member_when(customer.members, mid, lambda x: x.stats.spend_count == 2 and x.stats.points_balance == 300)
    assert (m.stats.spend_count, m.stats.spend_total_fen, m.stats.points_balance) == (2, 55_000, 300)
    assert m.stats.first_spend_time == ts(3) and m.stats.last_spend_time == ts(9)
    assert list(m.interaction_mall_ids) == [other]
    assert m.level == 1  # cumulative 55,000 >= 50,000

    await publish(js, "ledger.order.refunded.v1", events.OrderRefunded(
        refund_id="r1", order_id="1", member_id=mid, refund_amount=30_000, total_refunded_amount=30_000,
        fully_refunded=True, refund_time=ts(10)), "r1")
    third = await customer.mall("Third")
    await publish(js, "ledger.entry.posted.v1", events.EntryPosted(
        entry_id="11", member_id=mid, asset="ASSET_RED_PACKET", kind="ENTRY_KIND_ADJUST", amount=500,
        balance_after=500, mall_id=third, create_time=ts(11)), "e11")
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(order_id="3", member_id="999999",
                                                                        amount=1, occur_time=ts(9)), "unknown")
    m = await member_when(customer.members, mid, lambda x: x.stats.red_packet_balance_fen == 500
                          and x.stats.spend_count == 1)
    assert (m.stats.spend_count, m.stats.spend_total_fen) == (1, 25_000)
    assert sorted(m.interaction_mall_ids) == sorted([other, third])
    kinds = [e.kind for e in (await customer.members.ListTimeline(pb.ListTimelineRequest(customer_id=mid))).entries]
    assert kinds.count("order") == 2 and kinds.count("refund") == 1 and "level_changed" in kinds
    async with customer.db.read() as session:
        orders = (await session.scalars(select(MemberOrder).order_by(MemberOrder.order_id))).all()
        assert [(o.order_id, o.fully_refunded, o.store_id) for o in orders] == [(1, True, 7), (2, False, 8)]
        assert await session.scalar(select(func.count()).select_from(MemberOrder)) == 2
    # The mall admin of the third mall now sees the member (a settlement there is an interaction).
    from tests.support.customer import mall_admin
    seen = await customer.members.ListMembers(pb.ListMembersRequest(), metadata=mall_admin(third))
    assert [x.member_id for x in seen.members] == [mid]


async def test_a_batch_postings_entries_update_each_member_once_and_newest_wins(customer, js):
    home, other = await customer.mall("Home"), await customer.mall("Other")
    a, b = [(await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id=f"m{i}", phone=f"1350000001{i}", registration_mall_id=home), metadata=SUPER)).member.member_id
        for i in range(2)]

    def entry(entry_id: int, member_id: str, asset: str, balance: int, **kw) -> events.EntryPosted:
        return events.EntryPosted(entry_id=str(entry_id), member_id=member_id, asset=asset, amount=1,
                                  balance_after=balance, kind=kw.pop("kind", "ENTRY_KIND_EARN"), create_time=ts(5),
                                  **kw)

    batch = events.EntriesPosted(entries=[
        entry(20, a, "ASSET_POINTS", 200), entry(21, a, "ASSET_POINTS", 250), entry(22, a, "ASSET_BALANCE", 1_000),
        entry(23, "999999", "ASSET_POINTS", 5),  # unknown: skipped, the rest still applies
        entry(24, b, "ASSET_RED_PACKET", 700, kind="ENTRY_KIND_ADJUST", mall_id=other)])
    await publish(js, "ledger.entries.posted.v1", batch, "batch-1")
    # An older batch arriving late, redelivered under another id: the newer balances stay.
    await publish(js, "ledger.entries.posted.v1", events.EntriesPosted(entries=[entry(19, a, "ASSET_POINTS", 50)]),
                  "batch-0-late")
    await publish(js, "ledger.entries.posted.v1", batch, "batch-1-again")
    done = await member_when(customer.members, b, lambda x: x.stats.red_packet_balance_fen == 700)
    assert list(done.interaction_mall_ids) == [other]  # a red-packet settlement in another mall
    first = await member_when(customer.members, a, lambda x: x.stats.points_balance == 250)
    assert (first.stats.points_balance, first.stats.stored_balance_fen) == (250, 1_000)
    await caught_up(js, "LEDGER", "customer-ledger-events")  # the late batch and the repeat are handled too
    again = (await customer.members.GetMember(pb.GetMemberRequest(member_id=a))).member
    assert (again.stats.points_balance, again.stats.stored_balance_fen) == (250, 1_000)


async def test_the_first_order_fills_a_missing_real_name_and_phone(customer, js):
    mall = await customer.mall("Home")
    by_email = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="e", email="buyer@example.com", registration_mall_id=mall), metadata=SUPER)).member
    named = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="n", phone="13500000002", real_name="王五", registration_mall_id=mall), metadata=SUPER)).member
    taken = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="t", email="taken@example.com", registration_mall_id=mall), metadata=SUPER)).member
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="1", member_id=by_email.member_id, mall_id=mall, channel="ORDER_CHANNEL_ONLINE", amount=100,
        occur_time=ts(3), buyer_real_name="张三", buyer_phone="13912345678"), "f1")
    # A later order names someone else: what the first order filled stays.
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="2", member_id=by_email.member_id, mall_id=mall, channel="ORDER_CHANNEL_ONLINE", amount=100,
        occur_time=ts(4), buyer_real_name="李四", buyer_phone="13912345679"), "f2")
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="3", member_id=named.member_id, mall_id=mall, channel="ORDER_CHANNEL_ONLINE", amount=100,
        occur_time=ts(3), buyer_real_name="赵六", buyer_phone="13912345670"), "f3")
    # The buyer's phone already belongs to another member: only the name is filled.
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="4", member_id=taken.member_id, mall_id=mall, channel="ORDER_CHANNEL_ONLINE", amount=100,
        occur_time=ts(3), buyer_real_name="孙七", buyer_phone="13500000002"), "f4")

    filled = await member_when(customer.members, by_email.member_id, lambda x: x.stats.spend_count == 2)
    assert (filled.real_name, filled.phone, filled.email) == ("张三", "13912345678", "buyer@example.com")
    kept = await member_when(customer.members, named.member_id, lambda x: x.stats.spend_count == 1)
    assert (kept.real_name, kept.phone) == ("王五", "13500000002")
    half = await member_when(customer.members, taken.member_id, lambda x: x.stats.spend_count == 1)
    assert (half.real_name, half.phone) == ("孙七", "")
    timeline = (await customer.members.ListTimeline(pb.ListTimelineRequest(
        customer_id=by_email.member_id))).entries
    changes = [e for e in timeline if e.kind == "attribute_changed"]
    assert sorted(e.actor_id for e in changes) == ["system", "system"]
    # Filled details can be edited like any other.
    edited = await customer.members.UpdateMember(pb.UpdateMemberRequest(
        request_id="edit", member_id=by_email.member_id, member=member_pb2.Member(real_name="张三丰"),
        update_mask={"paths": ["real_name"]}), metadata=SUPER)
    assert edited.member.real_name == "张三丰"
    # The phone now identifies the member.
    found = await customer.members.ListMembers(pb.ListMembersRequest(filter=pb.MemberFilter(search="13912345678")),
                                               metadata=SUPER)
    assert [m.member_id for m in found.members] == [by_email.member_id]


async def test_a_phone_filled_from_an_order_that_belongs_to_store_staff_makes_a_store_member(customer, js):
    mall = await customer.mall("Staffed")
    store = (await customer.org.CreateStore(org_pb.CreateStoreRequest(request_id="s", mall_id=mall, name="门店"),
                                            metadata=SUPER)).store
    await customer.org.CreateStaff(org_pb.CreateStaffRequest(
        request_id="clerk", name="店员", phone="13911110000", role=org_pb.STAFF_ROLE_STORE_STAFF,
        store_id=store.store_id), metadata=SUPER)
    clerk_buyer, other = [(await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id=f"m{i}", email=f"m{i}@example.com", registration_mall_id=mall), metadata=SUPER)).member
        for i in range(2)]
    # One batch: both orders fill a phone; only the store staff's makes a store member.
    for i, (member, phone) in enumerate(((clerk_buyer, "13911110000"), (other, "13911110001"))):
        await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
            order_id=f"{100 + i}", member_id=member.member_id, mall_id=mall, channel="ORDER_CHANNEL_POS", amount=100,
            occur_time=ts(3), buyer_phone=phone), f"s{i}")
    filled = await member_when(customer.members, clerk_buyer.member_id, lambda x: x.stats.spend_count == 1)
    assert (filled.stats.spend_count, filled.phone, filled.store_member) == (1, "13911110000", True)
    plain = await member_when(customer.members, other.member_id, lambda x: x.stats.spend_count == 1)
    assert (plain.phone, plain.store_member) == ("13911110001", False)


async def test_a_voucher_redeemed_in_another_mall_relates_the_member_to_it(customer, js):
    home, other = await customer.mall("Home"), await customer.mall("Other")
    member = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="v", phone="13500000009", registration_mall_id=home), metadata=SUPER)).member
    for code, mall in (("V-home", home), ("V-other", other), ("V-other", other)):
        await publish(js, "ledger.voucher.redeemed.v1", events.VoucherRedeemed(
            redemption_id=code, member_id=member.member_id, mall_id=mall, voucher_code=code, points_cost=100,
            occur_time=ts(5)), f"msg-{code}")
    from tests.support.customer import mall_admin
    async def seen_by_other():
        page = await customer.members.ListMembers(pb.ListMembersRequest(), metadata=mall_admin(other))
        return [x.member_id for x in page.members]

    deadline = asyncio.get_running_loop().time() + 10
    while await seen_by_other() != [member.member_id] and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert await seen_by_other() == [member.member_id]
    got = (await customer.members.GetMember(pb.GetMemberRequest(member_id=member.member_id))).member
    assert list(got.interaction_mall_ids) == [other]  # the home mall is not an interaction
    kinds = [e.kind for e in (await customer.members.ListTimeline(pb.ListTimelineRequest(
        customer_id=member.member_id))).entries]
    assert kinds.count("voucher_redeemed") == 2  # a repeated message id is delivered once


async def test_online_and_offline_orders_are_counted_apart_sorted_and_filtered(customer, js):
    from crowdpack.customer.v1 import crowd_pb2 as crowd

    home = await customer.mall("Home")
    a, b = [(await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id=f"oo{i}", phone=f"1350000002{i}", registration_mall_id=home), metadata=SUPER)).member.member_id
        for i in range(2)]

    def order(order_id: str, member: str, channel: str, amount: int, day: int) -> events.OrderRecorded:
        return events.OrderRecorded(order_id=order_id, member_id=member, mall_id=home, store_id="7", channel=channel,
                                    amount=amount, paid_amount=amount, occur_time=ts(day))

    await publish(js, "ledger.order.recorded.v1", order("71", a, "ORDER_CHANNEL_ONLINE", 9_000, 4), "oo-71")
    await publish(js, "ledger.order.recorded.v1", order("72", a, "ORDER_CHANNEL_ONLINE", 1_000, 6), "oo-72")
    await publish(js, "ledger.order.recorded.v1", order("73", a, "ORDER_CHANNEL_POS", 2_000, 5), "oo-73")
    await publish(js, "ledger.order.recorded.v1", order("74", b, "ORDER_CHANNEL_FAST_POINTS", 50_000, 8), "oo-74")
    await publish(js, "ledger.order.recorded.v1", order("75", b, "ORDER_CHANNEL_ONLINE", 3_000, 2), "oo-75")
    # A's later online order is refunded in full (out of the count and the total), B's in part (the total only).
    await publish(js, "ledger.order.refunded.v1", events.OrderRefunded(
        refund_id="r72", order_id="72", member_id=a, refund_amount=1_000, total_refunded_amount=1_000,
        fully_refunded=True, refund_time=ts(7)), "oo-r72")
    await publish(js, "ledger.order.refunded.v1", events.OrderRefunded(
        refund_id="r75", order_id="75", member_id=b, refund_amount=500, total_refunded_amount=500,
        fully_refunded=False, refund_time=ts(7)), "oo-r75")
    await caught_up(js, "LEDGER", "customer-ledger-events")
    got = {m: (await customer.members.GetMember(pb.GetMemberRequest(member_id=m))).member.stats for m in (a, b)}
    assert (got[a].online_count, got[a].online_total_fen, got[a].online_last_time) == (1, 9_000, ts(6))
    assert (got[a].offline_count, got[a].offline_total_fen, got[a].offline_last_time) == (1, 2_000, ts(5))
    assert (got[b].online_count, got[b].online_total_fen, got[b].online_last_time) == (1, 2_500, ts(2))
    assert (got[b].offline_count, got[b].offline_total_fen, got[b].offline_last_time) == (1, 50_000, ts(8))

    async def listed(order_by: int) -> list[str]:
        page = await customer.members.ListMembers(pb.ListMembersRequest(order_by=order_by), metadata=SUPER)
        return [m.member_id for m in page.members]

    assert await listed(pb.MEMBER_ORDER_BY_ONLINE_TOTAL) == [a, b]
    assert await listed(pb.MEMBER_ORDER_BY_OFFLINE_TOTAL) == [b, a]
    assert await listed(pb.MEMBER_ORDER_BY_ONLINE_LAST_TIME) == [a, b]
    assert await listed(pb.MEMBER_ORDER_BY_OFFLINE_LAST_TIME) == [b, a]

    # The crowd filter: online total of at least 50 yuan; an online order in the first three days of the month.
    def online(**kw) -> pb.MemberFilter:
        return pb.MemberFilter(crowd_mall_id=home, crowd=crowd.CrowdDefinition(groups=[crowd.ConditionGroup(
            conditions=[crowd.Condition(online_orders=crowd.OnlineOrdersCondition(**kw))])]))

    # The crowd index follows the customer stream (the projection's activity event, relayed from its outbox), so
    # it may be a moment behind the statistics read above: the filters are asked until it has caught up.
    async def filters_match() -> bool:
        by_total = await customer.members.ListMembers(pb.ListMembersRequest(filter=online(
            metric=crowd.CONSUMPTION_METRIC_TOTAL, range=crowd.Int64Range(min=5_000))), metadata=SUPER)
        assert [m.member_id for m in by_total.members] == [a]
        by_last = await customer.members.ListMembers(pb.ListMembersRequest(filter=online(
            metric=crowd.CONSUMPTION_METRIC_LAST_TIME, window=crowd.DateWindow(fixed=crowd.FixedDates(
                from_date="2026-10-01", to_date="2026-10-03")))), metadata=SUPER)
        assert [m.member_id for m in by_last.members] == [b]
        return True

    await eventually(filters_match)


async def test_a_batch_announces_every_member_it_changed_in_one_activity_event(customer):
    home, other = await customer.mall("Home"), await customer.mall("Other")
    a, b, c = [(await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id=f"m{i}", phone=f"1350000003{i}", registration_mall_id=home), metadata=SUPER)).member.member_id
        for i in range(3)]

    async def apply(items) -> list[customer_events.MembersActivityChanged]:
        """Applies the events as one batch (one transaction); returns the activity events that batch added."""
        async with customer.db.read() as session:
            last = await session.scalar(select(func.max(OutboxEvent.seq))) or 0
        await customer.db.run_sync_write(lambda s: ledger_projection.apply_sync(s, items))
        async with customer.db.read() as session:
            rows = (await session.execute(select(OutboxEvent.subject, OutboxEvent.payload).where(
                OutboxEvent.seq > last, OutboxEvent.subject.in_([MEMBER_ACTIVITY_CHANGED, MEMBERS_ACTIVITY_CHANGED]))
                .order_by(OutboxEvent.seq))).all()
        assert {subject for subject, _ in rows} <= {MEMBERS_ACTIVITY_CHANGED}
        return [customer_events.MembersActivityChanged.FromString(payload) for _, payload in rows]

    order = dict(channel="ORDER_CHANNEL_POS", mall_id=home, occur_time=ts(3))
    first = await apply([
        (ORDER_RECORDED, events.OrderRecorded(order_id="71", member_id=b, amount=500, paid_amount=500, **order)),
        (ORDER_RECORDED, events.OrderRecorded(order_id="70", member_id=a, amount=900, paid_amount=900, **order)),
        (ORDER_RECORDED, events.OrderRecorded(order_id="72", member_id="999999", amount=1, **order)),  # unknown
        # A refund of an order the same batch recorded: the order is written refunded, nothing to reload.
        (ORDER_REFUNDED, events.OrderRefunded(refund_id="r70", order_id="70", member_id=a, refund_amount=900,
                                              total_refunded_amount=900, fully_refunded=True, refund_time=ts(4))),
        (VOUCHER_REDEEMED, events.VoucherRedeemed(redemption_id="v1", member_id=c, mall_id=other,
                                                  voucher_code="V", occur_time=ts(4)))])
    assert [(list(e.member_ids), list(e.new_order_ids), e.orders_changed) for e in first] == [
        (sorted([a, b, c], key=int), ["71", "70"], False)]
    async with customer.db.read() as session:
        assert (await session.execute(select(MemberOrder.order_id, MemberOrder.refunded_amount_fen,
                                             MemberOrder.fully_refunded).order_by(MemberOrder.order_id))).all() == [
            (70, 900, True), (71, 0, False)]

    # A refund of an order recorded before changes an indexed order: the event says so. A voucher redeemed
    # in a mall the member already relates to changes nothing, and names nobody.
    second = await apply([
        (ORDER_REFUNDED, events.OrderRefunded(refund_id="r71", order_id="71", member_id=b, refund_amount=200,
                                              total_refunded_amount=200, refund_time=ts(5))),
        (VOUCHER_REDEEMED, events.VoucherRedeemed(redemption_id="v2", member_id=c, mall_id=other,
                                                  voucher_code="V", occur_time=ts(5)))])
    assert [(list(e.member_ids), list(e.new_order_ids), e.orders_changed) for e in second] == [([b], [], True)]
    m = (await customer.members.GetMember(pb.GetMemberRequest(member_id=b))).member
    assert (m.stats.spend_count, m.stats.spend_total_fen) == (1, 300)
