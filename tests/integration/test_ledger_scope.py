"""The ledger applies the caller's scope (services/common/scope.py): who reads which member's ledger, and in
which malls a mall admin acts."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy import func, select

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller, Role
from services.ledger.models import JournalEntry, Order, OrderRefund, VoucherRedemption
from tests.support.identity import signed
from tests.support.ledger import (
    ago,
    eventually,
    refused,
    timestamp,
)

POINTS, BALANCE, RED = pb.ASSET_POINTS, pb.ASSET_BALANCE, pb.ASSET_RED_PACKET
SUPER = signed(Caller(staff_id="boss", role=Role.SUPER_ADMIN))
ADMIN_100 = signed(Caller(staff_id="li", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))
NO_MALLS = signed(Caller(staff_id="new", role=Role.MALL_ADMIN))
SALES = signed(Caller(staff_id="s", role=Role.SALES, mall_ids=frozenset({"100"})))
DENIED = grpc.StatusCode.PERMISSION_DENIED


def order(number: str, member: str, mall: str) -> pb.RecordOrderRequest:
    return pb.RecordOrderRequest(request_id=f"o-{number}", member_id=member, mall_id=mall,
                                 channel=pb.ORDER_CHANNEL_POS, external_order_no=number, amount=1_000,
                                 paid_amount=1_000, occur_time=ago(minutes=1))


async def reason(ledger, asset: int = POINTS) -> str:
    reply = await ledger.stub.CreateReasonTemplate(pb.CreateReasonTemplateRequest(
        request_id=f"t-{asset}", asset=asset, name=f"补录 {asset}"), metadata=SUPER)
    return reply.reason_template.reason_template_id


async def count(ledger, model) -> int:
    async with ledger.runtime.ctx.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_sales_read_no_members_ledger(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")
    recorded = await ledger.stub.RecordOrder(order("A", "1", "100"))
    await ledger.stub.RedeemVoucher(pb.RedeemVoucherRequest(request_id="v", member_id="1", mall_id="100",
                                                            voucher_code="V-1"))
    for call in (ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="1"), metadata=SALES),
                 ledger.stub.ListEntries(pb.ListEntriesRequest(member_id="1", asset=POINTS), metadata=SALES),
                 ledger.stub.GetConsumptionSummary(pb.GetConsumptionSummaryRequest(member_id="1"), metadata=SALES),
                 ledger.stub.GetOrder(pb.GetOrderRequest(order_id=recorded.order.order_id), metadata=SALES),
                 ledger.stub.GetVoucherRedemption(pb.GetVoucherRedemptionRequest(voucher_code="V-1"),
                                                  metadata=SALES)):
        code, _ = await refused(call)
        assert code == DENIED
    code, field = await refused(ledger.stub.PostEntry(pb.PostEntryRequest(request_id="p", posting=pb.Posting(
        member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=10, mall_id="100")), metadata=SALES))
    assert (code, field) == (DENIED, "role")


async def test_a_mall_admin_reads_the_members_related_to_their_malls(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")  # registered there
    await ledger.open_members("2", "3", "4", "5", "6", "7")
    await ledger.announce("customer.member.card_opened.v1", customer_events.MemberCardOpened(
        member_id="2", card_number="8000000000000002", mall_id="100", open_time=timestamp(datetime.now(UTC))))
    await eventually(lambda: ledger.related("2", "100"))              # bound a card there
    await ledger.stub.RecordOrder(order("B", "3", "100"))               # consumed there
    await ledger.stub.RedeemVoucher(pb.RedeemVoucherRequest(           # redeemed a voucher there
        request_id="v4", member_id="4", mall_id="100", voucher_code="V-4"))
    await ledger.stub.AdjustBalance(pb.AdjustBalanceRequest(           # red packets settled there
        request_id="a5", member_id="5", asset=RED, direction=pb.DIRECTION_INCREASE, value=5,
        reason_template_id=await reason(ledger, RED), mall_id="100"), metadata=SUPER)
    await ledger.post("r6", "6", BALANCE, pb.ENTRY_KIND_RECHARGE, 500, mall_id="100")  # a recharge: no relation
    await ledger.stub.RecordOrder(order("C", "7", "200"))               # another mall's customer

    for member in ("1", "2", "3", "4", "5"):
        reply = await ledger.stub.GetBalances(pb.GetBalancesRequest(member_id=member), metadata=ADMIN_100)
        assert len(reply.accounts) == 3, member
    for member in ("6", "7"):
        assert (await refused(ledger.stub.GetBalances(pb.GetBalancesRequest(member_id=member),
                                                      metadata=ADMIN_100)))[0] == DENIED, member
        assert (await refused(ledger.stub.ListEntries(pb.ListEntriesRequest(member_id=member, asset=BALANCE),
                                                      metadata=ADMIN_100)))[0] == DENIED, member
        assert (await refused(ledger.stub.GetConsumptionSummary(pb.GetConsumptionSummaryRequest(member_id=member),
                                                                metadata=ADMIN_100)))[0] == DENIED, member
    assert (await refused(ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="1"),
                                                  metadata=NO_MALLS)))[0] == DENIED
    # A member reads their own ledger only.
    me = signed(Caller(staff_id="6", role=Role.MEMBER))
    assert (await ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="6"), metadata=me)).accounts
    assert (await refused(ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="7"), metadata=me)))[0] == DENIED
    # An unknown member is NOT_FOUND for everyone (no scope question to answer).
    assert await refused(ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="404"), metadata=ADMIN_100)) == (
        grpc.StatusCode.NOT_FOUND, "member_id")


async def test_a_mall_admin_acts_only_in_their_malls(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")
    elsewhere = await ledger.stub.RecordOrder(order("D", "1", "200"))
    recharge = await ledger.post("r", "1", BALANCE, pb.ENTRY_KIND_RECHARGE, 500, mall_id="200")
    orders, entries = await count(ledger, Order), await count(ledger, JournalEntry)

    recharge_200 = pb.Posting(member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=10, mall_id="200")
    recharge_100 = pb.Posting(member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=10, mall_id="100")
    cases = [
        (ledger.stub.RecordOrder(order("E", "1", "200"), metadata=ADMIN_100), "mall_id"),
        (ledger.stub.PostEntry(pb.PostEntryRequest(request_id="p1", posting=recharge_200), metadata=ADMIN_100),
         "posting.mall_id"),
        (ledger.stub.PostEntry(pb.PostEntryRequest(request_id="p2", posting=pb.Posting(
            member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=10)), metadata=ADMIN_100),
         "posting.mall_id"),
        (ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="p3", postings=[recharge_100, recharge_200]),
                                 metadata=ADMIN_100), "postings[1].mall_id"),
        (ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="f1", order_id=elsewhere.order.order_id,
                                                       amount=100), metadata=ADMIN_100), "order_id"),
        (ledger.stub.RedeemVoucher(pb.RedeemVoucherRequest(request_id="v1", member_id="1", mall_id="200",
                                                           voucher_code="V-9"), metadata=ADMIN_100), "mall_id"),
        (ledger.stub.ReverseEntry(pb.ReverseEntryRequest(request_id="x1", entry_id=recharge.entry_id),
                                  metadata=ADMIN_100), "entry_id"),
        (ledger.stub.AdjustBalance(pb.AdjustBalanceRequest(
            request_id="a1", member_id="1", asset=POINTS, direction=pb.DIRECTION_INCREASE, value=5,
            reason_template_id=await reason(ledger), mall_id="100"), metadata=NO_MALLS), "mall_id"),
    ]
    for call, field in cases:
        assert await refused(call) == (DENIED, field)
    assert (await count(ledger, Order), await count(ledger, JournalEntry), await count(ledger, OrderRefund),
            await count(ledger, VoucherRedemption)) == (orders, entries, 0, 0)
    # In their own mall the same requests go through.
    mine = await ledger.stub.RecordOrder(order("F", "1", "100"), metadata=ADMIN_100)
    assert mine.order.mall_id == "100"
    await ledger.stub.RefundOrder(pb.RefundOrderRequest(request_id="f2", order_id=mine.order.order_id, amount=100),
                                  metadata=ADMIN_100)


async def test_an_adjustment_cannot_make_a_member_a_mall_admins_own(ledger):
    await ledger.open_malls()
    await ledger.open_members("9", registration_mall_id="200")
    why = await reason(ledger)
    code, _ = await refused(ledger.stub.AdjustBalance(pb.AdjustBalanceRequest(
        request_id="a", member_id="9", asset=POINTS, direction=pb.DIRECTION_INCREASE, value=50,
        reason_template_id=why, mall_id="100"), metadata=ADMIN_100))
    assert code == DENIED
    assert (await ledger.balance("9", POINTS)).balance == 0
    # Still outside the admin's scope afterwards: the refused adjustment related nothing.
    assert (await refused(ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="9"),
                                                  metadata=ADMIN_100)))[0] == DENIED


async def test_a_fast_imports_registration_and_card_malls_reach_the_ledgers_scope(ledger):
    await ledger.open_malls()
    await ledger.announce("customer.members.imported.v1", customer_events.MembersImported(
        job_id="j", member_ids=["11", "12", "13"], levels=[0, 0, 0], registration_mall_ids=["100", "", ""],
        card_open_mall_ids=["", "100", ""]))
    await eventually(lambda: ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="13")))
    await eventually(lambda: ledger.related("12", "100"))
    assert await ledger.related("11", "100")
    for member in ("11", "12"):
        assert (await ledger.stub.GetBalances(pb.GetBalancesRequest(member_id=member), metadata=ADMIN_100)).accounts
    assert (await refused(ledger.stub.GetBalances(pb.GetBalancesRequest(member_id="13"),
                                                  metadata=ADMIN_100)))[0] == DENIED
