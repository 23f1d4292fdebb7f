"""The ledger opens accounts from customer events; the alert service keeps its whitelist."""

from __future__ import annotations

import grpc
import pytest

from crowdpack.alert.v1 import alert_service_pb2 as alert_pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as alert_grpc
from crowdpack.events.v1 import customer_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from services.alert.assembly import build_spec as alert_spec
from services.alert.config import AlertSettings
from services.common.auth import Caller, Role
from services.ledger.config import LedgerSettings
from services.ledger.service import build_spec as ledger_spec
from tests.support.identity import signed
from tests.support.runtime import running_service
from tests.support.waiting import caught_up, outbox_sent


@pytest.mark.database("ledger")
async def test_member_created_opens_three_zero_accounts_once(database_url, nats_url, js, tmp_path):
    settings = LedgerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(ledger_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        stub = ledger_grpc.LedgerServiceStub(channel)
        payload = events.MemberCreated(member_id="5").SerializeToString()
        await js.publish("customer.member.created.v1", payload, headers={"Nats-Msg-Id": "a"})
        await js.publish("customer.member.created.v1", payload, headers={"Nats-Msg-Id": "b"})  # a second event
        await caught_up(js, "CUSTOMER", "ledger-customer-events")
        reply = await stub.GetBalances(ledger_pb.GetBalancesRequest(member_id="5"))
        assert sorted(a.asset for a in reply.accounts) == [
            ledger_pb.ASSET_POINTS, ledger_pb.ASSET_BALANCE, ledger_pb.ASSET_RED_PACKET]
        assert all(a.balance == 0 for a in reply.accounts)
        points = await stub.GetBalances(ledger_pb.GetBalancesRequest(member_id="5", asset=ledger_pb.ASSET_POINTS))
        assert [a.asset for a in points.accounts] == [ledger_pb.ASSET_POINTS]
        await outbox_sent(rt.ctx.db)  # whatever the two events committed is on the stream now
        assert (await js.stream_info("LEDGER")).state.messages == 3  # one ledger.account.opened per asset
        for bad, code in [(ledger_pb.GetBalancesRequest(member_id=""), grpc.StatusCode.INVALID_ARGUMENT),
                          (ledger_pb.GetBalancesRequest(member_id="5", asset=9), grpc.StatusCode.INVALID_ARGUMENT),
                          (ledger_pb.GetBalancesRequest(member_id="6"), grpc.StatusCode.NOT_FOUND)]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetBalances(bad)
            assert info.value.code() == code


@pytest.mark.database("alert")
async def test_whitelist_add_list_remove(database_url, nats_url, tmp_path):
    settings = AlertSettings(grpc_port=0, metrics_port=0, database_url=database_url)
    async with running_service(alert_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (_, channel):
        stub = alert_grpc.AlertServiceStub(channel)
        staff = signed(Caller(staff_id="s-1", role=Role.MALL_ADMIN))
        for i in range(3):
            added = await stub.AddWhitelistEntry(
                alert_pb.AddWhitelistEntryRequest(request_id=f"w{i}", member_id=str(10 + i), reason="VIP"),
                metadata=staff)
            assert added.entry.operator_id == "s-1"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.AddWhitelistEntry(alert_pb.AddWhitelistEntryRequest(request_id="dup", member_id="10"))
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        first = await stub.ListWhitelistEntries(alert_pb.ListWhitelistEntriesRequest(page_size=2))
        rest = await stub.ListWhitelistEntries(
            alert_pb.ListWhitelistEntriesRequest(page_size=2, page_token=first.next_page_token))
        assert [e.member_id for e in [*first.entries, *rest.entries]] == ["12", "11", "10"]
        assert rest.next_page_token == ""
        removed = await stub.RemoveWhitelistEntry(alert_pb.RemoveWhitelistEntryRequest(request_id="r", member_id="11"))
        assert removed.entry.member_id == "11"
        again = await stub.RemoveWhitelistEntry(alert_pb.RemoveWhitelistEntryRequest(request_id="r", member_id="11"))
        assert again == removed  # a retried removal answers as the first did
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.RemoveWhitelistEntry(alert_pb.RemoveWhitelistEntryRequest(request_id="r2", member_id="11"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
