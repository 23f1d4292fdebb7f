"""Orders: accrual by the points rule, idempotent external numbers, refunds, points debt, consumption summaries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller, Role
from services.common.db import Database
from services.ledger.commands import RECORDED_OF
from tests.support.identity import signed
from tests.support.ledger import ago, eventually, ledger_events, refused, timestamp, wait_for_events

pytestmark = pytest.mark.database("ledger")


POINTS = pb.ASSET_POINTS
POS, ONLINE, FAST = pb.ORDER_CHANNEL_POS, pb.ORDER_CHANNEL_ONLINE, pb.ORDER_CHANNEL_FAST_POINTS


def order(number: str, amount: int = 10_000, paid: int | None = None, *, member: str = "1", mall: str = "100",
          store: str = "7", channel: int = POS, when=None, request_id: str | None = None,
          buyer_real_name: str = "", buyer_phone: str = "") -> pb.RecordOrderRequest:
    return pb.RecordOrderRequest(
        request_id=request_id or f"order-{number}", member_id=member, mall_id=mall, store_id=store, channel=channel,
        external_order_no=number, amount=amount, paid_amount=amount if paid is None else paid,
        occur_time=when or ago(minutes=5), buyer_real_name=buyer_real_name, buyer_phone=buyer_phone)


async def set_rule(ledger, request_id: str, **fields) -> pb.PointsRule:
    reply = await ledger.stub.SetPointsRule(
        pb.SetPointsRuleRequest(request_id=request_id, rule=pb.PointsRule(**fields)))
    return reply.rule


async def test_orders_earn_points_by_the_malls_rule_in_the_same_transaction(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", level=2)
    # Without any rule the built-in one applies: 1 point per yuan paid.
    builtin = await ledger.stub.GetPointsRule(pb.GetPointsRuleRequest(mall_id="100"))
    assert builtin.built_in and builtin.rule.points_per_yuan == 1
    recorded = await ledger.stub.RecordOrder(order("A-1", 12_345, 10_050))
    assert recorded.order.points_earned == 100  # 100.50 yuan paid
    await set_rule(ledger, "rule-default", points_per_yuan=2)
    await set_rule(ledger, "rule-100", mall_id="100", points_per_yuan=3, level_multiplier_permille={2: 1500},
                   excluded_store_ids=["9"])
    rule = await ledger.stub.GetPointsRule(pb.GetPointsRuleRequest(mall_id="100"))
    assert (rule.built_in, rule.rule.mall_id, dict(rule.rule.level_multiplier_permille)) == (False, "100", {2: 1500})
    assert (await ledger.stub.GetPointsRule(pb.GetPointsRuleRequest(mall_id="200"))).rule.points_per_yuan == 2

    level2 = await ledger.stub.RecordOrder(order("A-2", 20_000))      # 200 yuan × 3 × 1.5
    excluded = await ledger.stub.RecordOrder(order("A-3", 20_000, store="9"))
    elsewhere = await ledger.stub.RecordOrder(order("A-4", 20_000, mall="200", store="8"))  # the default rule: × 2
    assert [r.order.points_earned for r in (level2, excluded, elsewhere)] == [900, 0, 400]
    assert [(e.kind, e.amount, e.order_id) for e in level2.entries] == [
        (pb.ENTRY_KIND_EARN, 900, level2.order.order_id)]
    assert list(excluded.entries) == []
    assert (await ledger.balance("1", POINTS)).balance == 100 + 900 + 400

    # The customer service moves the member to level 5: no multiplier is set for it.
    await ledger.announce("customer.member.level_changed.v1", customer_events.MemberLevelChanged(
        member_id="1", from_level=2, to_level=5, kind="upgrade", change_time=timestamp(datetime.now(UTC))))

    async def at_level_5() -> bool:
        probe = await ledger.stub.RecordOrder(order(f"probe-{datetime.now(UTC).timestamp()}", 100))
        return probe.order.points_earned == 3

    await eventually(at_level_5)

    recorded_events = await wait_for_events(ledger.js, "ledger.order.recorded.v1", 5)
    first = recorded_events[1]
    assert (first.order_id, first.member_id, first.mall_id, first.store_id, first.channel, first.amount,
            first.paid_amount, first.points_earned, first.external_order_no) == (
        level2.order.order_id, "1", "100", "7", "ORDER_CHANNEL_POS", 20_000, 20_000, 900, "A-2")
    assert first.occur_time == level2.order.occur_time
    earned = [e for e in await ledger_events(ledger.js, "ledger.entry.posted.v1") if e.order_id == first.order_id]
    assert [(e.kind, e.amount, e.mall_id) for e in earned] == [("ENTRY_KIND_EARN", 900, "100")]


async def test_an_external_order_number_is_recorded_once_per_channel(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", "2")
    first = await ledger.stub.RecordOrder(order("X-1", 5_000))
    again = await ledger.stub.RecordOrder(order("X-1", 5_000, request_id="another-request",
                                                when=first.order.occur_time))
    assert again == first
    other_channel = await ledger.stub.RecordOrder(order("X-1", 5_000, channel=ONLINE, request_id="online"))
    assert other_channel.order.order_id != first.order.order_id
    code, field = await refused(ledger.stub.RecordOrder(order("X-1", 6_000, request_id="third",
                                                              when=first.order.occur_time)))
    assert (code, field) == (grpc.StatusCode.ALREADY_EXISTS, "external_order_no")
    assert (await ledger.balance("1", POINTS)).balance == 100
    fetched = await ledger.stub.GetOrder(pb.GetOrderRequest(channel=POS, external_order_no="X-1"))
    assert fetched.order == first.order
    assert len(await wait_for_events(ledger.js, "ledger.order.recorded.v1", 2)) == 2


async def test_the_repeat_check_of_a_batch_searches_the_order_key_instead_of_scanning_every_order(tmp_path):
    # Every RecordOrder batch asks which of its numbers are recorded; a scan would grow with the orders.
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", Path("services/ledger/migrations"))
    await db.migrate()
    try:
        query = RECORDED_OF.params(channels=[POS, ONLINE], numbers=["X-1", "X-2"])
        sql = str(query.compile(db.read_engine.sync_engine,
                                compile_kwargs={"literal_binds": True, "render_postcompile": True}))
        async with db.read() as session:
            plan = " ".join(row.detail for row in await session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    finally:
        await db.dispose()
    assert "SEARCH order_record USING COVERING INDEX" in plan and "(channel=? AND external_order_no=?)" in plan


async def test_an_order_keeps_its_buyer_and_announces_it(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    recorded = await ledger.stub.RecordOrder(order("N-1", 5_000, buyer_real_name=" 张三 ", buyer_phone="13912345678"))
    assert (recorded.order.buyer_real_name, recorded.order.buyer_phone) == ("张三", "13912345678")
    fetched = await ledger.stub.GetOrder(pb.GetOrderRequest(order_id=recorded.order.order_id))
    assert (fetched.order.buyer_real_name, fetched.order.buyer_phone) == ("张三", "13912345678")
    # The same external number with another buyer is another order's details.
    code, field = await refused(ledger.stub.RecordOrder(order("N-1", 5_000, request_id="other-buyer",
                                                              when=recorded.order.occur_time,
                                                              buyer_real_name="李四", buyer_phone="13912345678")))
    assert (code, field) == (grpc.StatusCode.ALREADY_EXISTS, "external_order_no")
    [event] = await wait_for_events(ledger.js, "ledger.order.recorded.v1", 1)
    assert (event.buyer_real_name, event.buyer_phone) == ("张三", "13912345678")


async def test_bad_orders_are_refused_naming_the_field(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    future = timestamp(datetime.now(UTC) + timedelta(hours=2))
    cases = [
        (order("B", 0), grpc.StatusCode.INVALID_ARGUMENT, "amount"),
        (order("B", -100), grpc.StatusCode.INVALID_ARGUMENT, "amount"),
        (order("B", 9 * 10**15 + 1), grpc.StatusCode.INVALID_ARGUMENT, "amount"),
        (order("B", 100, 101), grpc.StatusCode.INVALID_ARGUMENT, "paid_amount"),
        (order("B", 100, -1), grpc.StatusCode.INVALID_ARGUMENT, "paid_amount"),
        (order("B", channel=0), grpc.StatusCode.INVALID_ARGUMENT, "channel"),
        (order("B", channel=17), grpc.StatusCode.INVALID_ARGUMENT, "channel"),
        (order("", 100), grpc.StatusCode.INVALID_ARGUMENT, "external_order_no"),
        (order("B", when=future), grpc.StatusCode.INVALID_ARGUMENT, "occur_time"),
        (order("B", mall=""), grpc.StatusCode.INVALID_ARGUMENT, "mall_id"),
        (order("B", store="s-7"), grpc.StatusCode.INVALID_ARGUMENT, "store_id"),
        (order("B", member="404"), grpc.StatusCode.NOT_FOUND, "member_id"),
        (order("B", buyer_phone="12345"), grpc.StatusCode.INVALID_ARGUMENT, "buyer_phone"),
        (order("B", buyer_real_name="x" * 101), grpc.StatusCode.INVALID_ARGUMENT, "buyer_real_name"),
    ]
    without_id = order("B")
    without_id.request_id = ""
    cases.append((without_id, grpc.StatusCode.INVALID_ARGUMENT, "request_id"))
    for request, code, field in cases:
        assert await refused(ledger.stub.RecordOrder(request)) == (code, field), request
    missing_time = order("B")
    missing_time.ClearField("occur_time")
    assert await refused(ledger.stub.RecordOrder(missing_time)) == (grpc.StatusCode.INVALID_ARGUMENT, "occur_time")
    assert await ledger_events(ledger.js, "ledger.order.recorded.v1") == []


async def test_refunds_take_back_proportional_points_and_add_up_to_the_order(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    await set_rule(ledger, "rule", points_per_yuan=1)
    recorded = await ledger.stub.RecordOrder(order("R-1", 10_000, 9_990))  # 99 points (99.90 yuan paid)
    order_id = recorded.order.order_id
    partial = await ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="ref-1", order_id=order_id, amount=3_333))
    assert (partial.refund.amount, partial.refund.paid_amount, partial.refund.points_reversed) == (3_333, 3_329, 32)
    assert [(e.kind, e.amount) for e in partial.entries] == [(pb.ENTRY_KIND_REFUND, -32)]
    assert (partial.order.refunded_amount, partial.order.points_reversed) == (3_333, 32)
    code, field = await refused(ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="ref-2", order_id=order_id,
                                                                              amount=6_668)))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "amount")
    rest = await ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="ref-3", order_id=order_id, amount=6_667))
    assert (rest.order.refunded_amount, rest.order.refunded_paid_amount, rest.order.points_reversed) == (
        10_000, 9_990, 99)
    assert (await ledger.balance("1", POINTS)).balance == 0
    code, field = await refused(ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="ref-4", order_id=order_id,
                                                                              amount=1)))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "order_id")
    for bad, code, field in [
        (pb.RefundOrderRequest(request_id="ref-5", order_id="999", amount=1), grpc.StatusCode.NOT_FOUND, "order_id"),
        (pb.RefundOrderRequest(request_id="ref-6", order_id=order_id, amount=0), grpc.StatusCode.INVALID_ARGUMENT,
         "amount"),
        (pb.RefundOrderRequest(request_id="ref-7", order_id=order_id, amount=5,
                               occur_time=timestamp(datetime.now(UTC) + timedelta(days=1))),
         grpc.StatusCode.INVALID_ARGUMENT, "occur_time"),
    ]:
        assert await refused(ledger.stub.RefundOrder(bad)) == (code, field)

    refunded = await wait_for_events(ledger.js, "ledger.order.refunded.v1", 2)
    assert [(e.order_id, e.refund_amount, e.refund_paid_amount, e.total_refunded_amount, e.fully_refunded,
             e.points_reversed, e.member_id, e.store_id, e.channel) for e in refunded] == [
        (order_id, 3_333, 3_329, 3_333, False, 32, "1", "7", "ORDER_CHANNEL_POS"),
        (order_id, 6_667, 6_661, 10_000, True, 67, "1", "7", "ORDER_CHANNEL_POS")]


async def test_buy_earn_spend_refund_leaves_a_points_debt_that_later_earnings_pay_first(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    recorded = await ledger.stub.RecordOrder(order("D-1", 10_000))  # 100 points
    await ledger.post("spend", "1", POINTS, pb.ENTRY_KIND_SPEND, 80)
    refund = await ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="ref", order_id=recorded.order.order_id,
                                                                 amount=10_000))
    assert (refund.refund.points_reversed, refund.refund.points_debt) == (100, 80)
    assert [e.amount for e in refund.entries] == [-20]
    account = await ledger.balance("1", POINTS)
    assert (account.balance, account.points_debt) == (0, 80)

    paid_off = await ledger.stub.RecordOrder(order("D-2", 5_000))  # 50 points, all to the debt
    assert [(e.kind, e.amount, e.balance_after) for e in paid_off.entries] == [
        (pb.ENTRY_KIND_EARN, 50, 50), (pb.ENTRY_KIND_REFUND, -50, 0)]
    account = await ledger.balance("1", POINTS)
    assert (account.balance, account.points_debt) == (0, 30)
    rest = await ledger.stub.RecordOrder(order("D-3", 10_000))
    assert [e.amount for e in rest.entries] == [100, -30]
    account = await ledger.balance("1", POINTS)
    assert (account.balance, account.points_debt) == (70, 0)
    # The member kept nothing of the refunded order: 70 = the 150 points of D-2 and D-3, less the 80 spent.
    posted = await wait_for_events(ledger.js, "ledger.entry.posted.v1", 7)
    assert [(e.kind, e.amount, e.balance_after, e.points_debt_after) for e in posted] == [
        ("ENTRY_KIND_EARN", 100, 100, 0), ("ENTRY_KIND_SPEND", -80, 20, 0), ("ENTRY_KIND_REFUND", -20, 0, 80),
        ("ENTRY_KIND_EARN", 50, 50, 80), ("ENTRY_KIND_REFUND", -50, 0, 30),
        ("ENTRY_KIND_EARN", 100, 100, 30), ("ENTRY_KIND_REFUND", -30, 70, 0)]


async def test_a_disabled_members_order_is_recorded_without_points(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    await ledger.set_status("1", disabled=True)

    async def disabled() -> bool:
        # An overdraft writes nothing either way; the field says why it was refused.
        return await refused(ledger.post("probe", "1", POINTS, pb.ENTRY_KIND_SPEND, 10**6)) == (
            grpc.StatusCode.FAILED_PRECONDITION, "posting.member_id")

    await eventually(disabled)
    recorded = await ledger.stub.RecordOrder(order("N-1", 50_000))
    assert (recorded.order.points_earned, list(recorded.entries)) == (0, [])
    assert (await ledger.balance("1", POINTS)).balance == 0
    assert (await wait_for_events(ledger.js, "ledger.order.recorded.v1", 1))[0].amount == 50_000


async def test_consumption_summary_per_mall_and_store_net_of_refunds(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", "2")
    t0 = datetime.now(UTC) - timedelta(days=3)
    a = await ledger.stub.RecordOrder(order("S-1", 1_000, 900, mall="100", store="1", when=timestamp(t0)))
    await ledger.stub.RecordOrder(order("S-2", 2_000, mall="100", store="1", when=timestamp(t0 + timedelta(days=1))))
    await ledger.stub.RecordOrder(order("S-3", 4_000, mall="100", store="2", when=timestamp(t0 + timedelta(days=2))))
    c = await ledger.stub.RecordOrder(order("S-4", 8_000, mall="200", store="5", channel=ONLINE,
                                            when=timestamp(t0 + timedelta(hours=1))))
    await ledger.stub.RecordOrder(order("S-5", 99_999, member="2"))
    await ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="r1", order_id=a.order.order_id, amount=400))
    await ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="r2", order_id=c.order.order_id, amount=8_000))

    summary = await ledger.stub.GetConsumptionSummary(pb.GetConsumptionSummaryRequest(member_id="1"))
    assert (summary.totals.order_count, summary.totals.total_amount, summary.totals.total_paid_amount) == (
        3, 600 + 2_000 + 4_000, 540 + 2_000 + 4_000)
    assert summary.totals.first_order_time == timestamp(t0)
    assert summary.totals.last_order_time == timestamp(t0 + timedelta(days=2))
    malls = {m.mall_id: m for m in summary.malls}
    assert (malls["100"].totals.order_count, malls["100"].totals.total_amount) == (3, 6_600)
    assert [(s.store_id, s.totals.order_count, s.totals.total_amount) for s in malls["100"].stores] == [
        ("1", 2, 2_600), ("2", 1, 4_000)]
    assert (malls["200"].totals.order_count, malls["200"].totals.total_amount) == (0, 0)  # fully refunded

    offline = await ledger.stub.GetConsumptionSummary(pb.GetConsumptionSummaryRequest(
        member_id="1", channels=[POS, FAST], start_time=timestamp(t0 + timedelta(hours=12))))
    assert (offline.totals.order_count, offline.totals.total_amount) == (2, 6_000)
    for bad, code, field in [
        (pb.GetConsumptionSummaryRequest(member_id="x"), grpc.StatusCode.INVALID_ARGUMENT, "member_id"),
        (pb.GetConsumptionSummaryRequest(member_id="404"), grpc.StatusCode.NOT_FOUND, "member_id"),
        (pb.GetConsumptionSummaryRequest(member_id="1", channels=[0]), grpc.StatusCode.INVALID_ARGUMENT, "channels[0]"),
    ]:
        assert await refused(ledger.stub.GetConsumptionSummary(bad)) == (code, field)


async def test_points_rules_are_checked_and_only_admins_set_them(ledger):
    await ledger.open_malls()
    for bad, field in [(pb.PointsRule(points_per_yuan=-1), "rule.points_per_yuan"),
                       (pb.PointsRule(points_per_yuan=10_001), "rule.points_per_yuan"),
                       (pb.PointsRule(level_multiplier_permille={11: 1000}), "rule.level_multiplier_permille[11]"),
                       (pb.PointsRule(level_multiplier_permille={1: -5}), "rule.level_multiplier_permille[1]"),
                       (pb.PointsRule(excluded_store_ids=["x"]), "rule.excluded_store_ids[0]"),
                       (pb.PointsRule(expiry_days=-1), "rule.expiry_days"),
                       (pb.PointsRule(mall_id="m"), "rule.mall_id")]:
        got = await refused(ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id="x", rule=bad)))
        assert got == (grpc.StatusCode.INVALID_ARGUMENT, field)
    admin_100 = signed(Caller(staff_id="a", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))
    ok = await ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(
        request_id="own", rule=pb.PointsRule(mall_id="100", points_per_yuan=5, expiry_days=365)), metadata=admin_100)
    assert (ok.rule.operator_id, ok.rule.expiry_days) == ("a", 365)
    for rule in (pb.PointsRule(mall_id="200"), pb.PointsRule()):
        got = await refused(ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id=f"other-{rule.mall_id}",
                                                                              rule=rule), metadata=admin_100))
        assert got == (grpc.StatusCode.PERMISSION_DENIED, "rule.mall_id")


async def test_one_order_sent_concurrently_under_many_request_ids_is_recorded_once(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    when = ago(minutes=1)
    replies = await asyncio.gather(*(ledger.stub.RecordOrder(order("C-1", 7_000, when=when, request_id=f"try-{i}"))
                                     for i in range(10)))
    assert len({r.order.order_id for r in replies}) == 1
    assert all(r.order == replies[0].order and list(r.entries) == list(replies[0].entries) for r in replies)
    assert (await ledger.balance("1", POINTS)).balance == 70
    assert len(await wait_for_events(ledger.js, "ledger.order.recorded.v1", 1)) == 1
