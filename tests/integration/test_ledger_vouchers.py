"""Voucher redemptions: once per code, points spent in the same transaction, refused to disabled members."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from tests.support.ledger import ago, ledger_events, refused, timestamp, wait_for_events
from tests.support.waiting import outbox_sent

pytestmark = pytest.mark.database("ledger")


POINTS = pb.ASSET_POINTS


def voucher(code: str, *, member: str = "1", mall: str = "200", store: str = "8", cost: int = 0,
            request_id: str | None = None, when=None) -> pb.RedeemVoucherRequest:
    return pb.RedeemVoucherRequest(request_id=request_id or f"redeem-{code}", member_id=member, mall_id=mall,
                                   store_id=store, voucher_code=code, voucher_name="¥20 off", points_cost=cost,
                                   occur_time=when or ago(minutes=1))


async def test_a_voucher_bought_with_points_spends_them_once(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    await ledger.post("earn", "1", POINTS, pb.ENTRY_KIND_EARN, 500)
    request = voucher("V-1", cost=300)
    redeemed = await ledger.stub.RedeemVoucher(request)
    r = redeemed.redemption
    assert (r.member_id, r.mall_id, r.store_id, r.voucher_code, r.points_cost) == ("1", "200", "8", "V-1", 300)
    assert [(e.kind, e.amount, e.balance_after, e.mall_id) for e in redeemed.entries] == [
        (pb.ENTRY_KIND_SPEND, -300, 200, "200")]
    assert r.entry_id == redeemed.entries[0].entry_id
    # The same request again answers the same; the same code under another request is refused.
    assert await ledger.stub.RedeemVoucher(request) == redeemed
    assert await refused(ledger.stub.RedeemVoucher(voucher("V-1", cost=300, request_id="again"))) == (
        grpc.StatusCode.ALREADY_EXISTS, "voucher_code")
    assert (await ledger.balance("1", POINTS)).balance == 200
    # A free voucher spends nothing.
    free = await ledger.stub.RedeemVoucher(voucher("V-2"))
    assert (free.redemption.points_cost, free.redemption.entry_id, list(free.entries)) == (0, "", [])
    # More points than the balance: refused, nothing written.
    assert await refused(ledger.stub.RedeemVoucher(voucher("V-3", cost=201))) == (
        grpc.StatusCode.FAILED_PRECONDITION, "points_cost")
    assert await refused(ledger.stub.GetVoucherRedemption(pb.GetVoucherRedemptionRequest(voucher_code="V-3"))) == (
        grpc.StatusCode.NOT_FOUND, "voucher_code")
    fetched = await ledger.stub.GetVoucherRedemption(pb.GetVoucherRedemptionRequest(voucher_code="V-1"))
    assert fetched.redemption == r
    announced = await wait_for_events(ledger.js, "ledger.voucher.redeemed.v1", 2)
    assert [(e.voucher_code, e.member_id, e.mall_id, e.points_cost) for e in announced] == [
        ("V-1", "1", "200", 300), ("V-2", "1", "200", 0)]
    await outbox_sent(ledger.runtime.ctx.db)  # every event committed so far is on the stream: no third one
    assert len(await ledger_events(ledger.js, "ledger.voucher.redeemed.v1")) == 2


async def test_concurrent_redemptions_of_one_code_redeem_it_once(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", "2")
    for member in ("1", "2"):
        await ledger.post(f"earn-{member}", member, POINTS, pb.ENTRY_KIND_EARN, 1_000)
    results = await asyncio.gather(*(
        ledger.stub.RedeemVoucher(voucher("SHARED", member=str(1 + i % 2), cost=100, request_id=f"r{i}"))
        for i in range(8)), return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 7
    assert {e.code() for e in lost} == {grpc.StatusCode.ALREADY_EXISTS}
    balances = [(await ledger.balance(m, POINTS)).balance for m in ("1", "2")]
    assert sorted(balances) == [900, 1_000]


async def test_bad_redemptions_are_refused_naming_the_field(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", "9")
    await ledger.set_status("9", disabled=True)
    future = timestamp(datetime.now(UTC) + timedelta(hours=2))
    cases = [
        (voucher(""), grpc.StatusCode.INVALID_ARGUMENT, "voucher_code"),
        (voucher(" V "), grpc.StatusCode.INVALID_ARGUMENT, "voucher_code"),
        (voucher("V" * 65), grpc.StatusCode.INVALID_ARGUMENT, "voucher_code"),
        (voucher("V", cost=-1), grpc.StatusCode.INVALID_ARGUMENT, "points_cost"),
        (voucher("V", cost=9 * 10**15 + 1), grpc.StatusCode.INVALID_ARGUMENT, "points_cost"),
        (voucher("V", mall=""), grpc.StatusCode.INVALID_ARGUMENT, "mall_id"),
        (voucher("V", store="x"), grpc.StatusCode.INVALID_ARGUMENT, "store_id"),
        (voucher("V", member="abc"), grpc.StatusCode.INVALID_ARGUMENT, "member_id"),
        (voucher("V", when=future), grpc.StatusCode.INVALID_ARGUMENT, "occur_time"),
        (voucher("V", member="404"), grpc.StatusCode.NOT_FOUND, "member_id"),
        (voucher("V", member="9"), grpc.StatusCode.FAILED_PRECONDITION, "member_id"),
    ]
    without_id = voucher("V")
    without_id.request_id = ""
    cases.append((without_id, grpc.StatusCode.INVALID_ARGUMENT, "request_id"))
    for request, code, field in cases:
        assert await refused(ledger.stub.RedeemVoucher(request)) == (code, field), request
    assert await ledger_events(ledger.js, "ledger.voucher.redeemed.v1") == []
