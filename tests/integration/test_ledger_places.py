"""The ledger keeps the malls and stores the customer service announces, and refuses ids it does not know."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import func, select

from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, Role
from services.ledger.config import LedgerSettings
from services.ledger.models import JournalEntry, MallState, Order, PointsRule, StoreState, VoucherRedemption
from services.ledger.service import build_spec
from tests.support.customer import SUPER, mask
from tests.support.databases import fresh_database
from tests.support.identity import signed
from tests.support.ledger import ago, eventually, refused, timestamp
from tests.support.runtime import running_service

POINTS, BALANCE = pb.ASSET_POINTS, pb.ASSET_BALANCE


def order(number: str, *, mall: str, store: str = "") -> pb.RecordOrderRequest:
    return pb.RecordOrderRequest(request_id=f"o-{number}", member_id="1", mall_id=mall, store_id=store,
                                 channel=pb.ORDER_CHANNEL_POS, external_order_no=number, amount=1_000,
                                 paid_amount=1_000, occur_time=ago(minutes=1))


async def count(ledger, model) -> int:
    async with ledger.runtime.ctx.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_announced_state_is_kept_and_an_older_event_changes_nothing(ledger):
    await ledger.open_mall("1", "10")
    now = datetime.now(UTC)
    await ledger.announce("customer.store.changed.v1", customer_events.StoreChanged(
        store_id="10", mall_id="1", name="海底捞", category="餐饮", brand="海底捞", change_time=timestamp(now)))
    await ledger.announce("customer.store.changed.v1", customer_events.StoreChanged(
        store_id="10", mall_id="1", name="stale", change_time=timestamp(now - timedelta(hours=1))))
    await ledger.announce("customer.mall.changed.v1", customer_events.MallChanged(
        mall_id="1", name="万象城", timezone="Asia/Shanghai", change_time=timestamp(now)))
    # A marker after them: once it is known, the consumer has handled everything before it.
    await ledger.open_mall("2")
    async with ledger.runtime.ctx.db.read() as session:
        store = await session.get(StoreState, "10")
        mall = await session.get(MallState, "1")
    assert (store.name, store.category, store.brand, store.mall_id) == ("海底捞", "餐饮", "海底捞", "1")
    assert (mall.name, mall.timezone, mall.deleted) == ("万象城", "Asia/Shanghai", False)


async def test_unknown_or_mismatched_malls_and_stores_are_refused_naming_the_field(ledger):
    await ledger.open_mall("1", "10")
    await ledger.open_mall("2", "20")
    await ledger.open_members("1")
    await ledger.announce("customer.mall.changed.v1", customer_events.MallChanged(
        mall_id="3", name="closed", deleted=True, change_time=timestamp(datetime.now(UTC))))
    await eventually(lambda: _deleted(ledger, "3"))
    admin = signed(Caller(staff_id="boss", role=Role.SUPER_ADMIN))
    reason = (await ledger.stub.CreateReasonTemplate(pb.CreateReasonTemplateRequest(
        request_id="t", asset=POINTS, name="补录"), metadata=admin)).reason_template.reason_template_id

    cases = [
        (ledger.stub.RecordOrder(order("A", mall="99999")), "mall_id"),
        (ledger.stub.RecordOrder(order("B", mall="1", store="20")), "store_id"),
        (ledger.stub.RecordOrder(order("C", mall="1", store="77")), "store_id"),
        (ledger.stub.RecordOrder(order("D", mall="3")), "mall_id"),
        (ledger.stub.PostEntry(pb.PostEntryRequest(request_id="p1", posting=pb.Posting(
            member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=100, store_id="10"))),
         "posting.mall_id"),
        (ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="p2", postings=[
            pb.Posting(member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=100, mall_id="1"),
            pb.Posting(member_id="1", asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=100, mall_id="2",
                       store_id="10")])), "postings[1].store_id"),
        (ledger.stub.AdjustBalance(pb.AdjustBalanceRequest(
            request_id="a1", member_id="1", asset=POINTS, direction=pb.DIRECTION_INCREASE, value=5,
            reason_template_id=reason, mall_id="42"), metadata=admin), "mall_id"),
        (ledger.stub.RedeemVoucher(pb.RedeemVoucherRequest(
            request_id="v1", member_id="1", mall_id="2", store_id="10", voucher_code="V-1")), "store_id"),
        (ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id="r1", rule=pb.PointsRule(
            mall_id="99999", points_per_yuan=1)), metadata=admin), "rule.mall_id"),
        (ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id="r2", rule=pb.PointsRule(
            mall_id="1", points_per_yuan=1, excluded_store_ids=["10", "20"])), metadata=admin),
         "rule.excluded_store_ids[1]"),
        (ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id="r3", rule=pb.PointsRule(
            points_per_yuan=1, excluded_store_ids=["55"])), metadata=admin), "rule.excluded_store_ids[0]"),
    ]
    for call, field in cases:
        assert await refused(call) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    # Nothing was written by any of them.
    assert [await count(ledger, m) for m in (Order, JournalEntry, VoucherRedemption, PointsRule)] == [0, 0, 0, 0]

    # The same requests with ids that fit go through.
    recorded = await ledger.stub.RecordOrder(order("E", mall="1", store="10"))
    assert (recorded.order.mall_id, recorded.order.store_id) == ("1", "10")
    rule = await ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id="r4", rule=pb.PointsRule(
        mall_id="2", points_per_yuan=1, excluded_store_ids=["20"])), metadata=admin)
    assert list(rule.rule.excluded_store_ids) == ["20"]


async def _deleted(ledger, mall_id: str) -> bool:
    async with ledger.runtime.ctx.db.read() as session:
        mall = await session.get(MallState, mall_id)
    return mall is not None and mall.deleted


async def test_malls_and_stores_made_in_the_customer_service_reach_the_ledger(customer, backend, nats_url, tmp_path):
    # Created before the ledger ever ran: its consumer reads them from the start of the stream.
    mall = (await customer.org.CreateMall(org_pb.CreateMallRequest(request_id="m", name="万象城"),
                                          metadata=SUPER)).mall
    store = (await customer.org.CreateStore(org_pb.CreateStoreRequest(
        request_id="s", mall_id=mall.mall_id, name="海底捞", brand="海底捞"), metadata=SUPER)).store
    with fresh_database(backend, tmp_path, "ledger") as url:
        settings = LedgerSettings(grpc_port=0, metrics_port=0, database_url=url, outbox_poll_s=0.05)
        async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path / "ledger") as (
                runtime, channel):
            stub = pb_grpc.LedgerServiceStub(channel)

            async def recorded_rule(mall_id: str, request_id: str) -> pb.SetPointsRuleResponse | None:
                try:
                    return await stub.SetPointsRule(pb.SetPointsRuleRequest(request_id=request_id, rule=pb.PointsRule(
                        mall_id=mall_id, points_per_yuan=2, excluded_store_ids=[store.store_id])))
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
                    return None

            rule = await eventually(lambda: recorded_rule(mall.mall_id, "rule-1"))
            assert list(rule.rule.excluded_store_ids) == [store.store_id]
            # A brand change travels too (full state).
            await customer.org.UpdateStore(org_pb.UpdateStoreRequest(
                request_id="u", store=org_pb.Store(store_id=store.store_id, brand="海底捞火锅"),
                update_mask=mask("brand")), metadata=SUPER)

            async def brand() -> str:
                async with runtime.ctx.db.read() as session:
                    return (await session.get(StoreState, store.store_id)).brand

            assert await eventually(lambda: _equals(brand, "海底捞火锅"))


async def _equals(read, expected) -> bool:
    return await read() == expected
