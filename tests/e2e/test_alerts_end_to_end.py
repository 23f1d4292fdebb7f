"""Abnormal-member alerts through real processes: orders recorded through the ledger reach the alert
service over NATS, and it raises exactly the alerts a plain re-computation over the same orders expects.

Covers each condition kind, a store scope by tag, refunds, orders outside the window, a mall in another
time zone, a rule edit and its re-evaluation, the whitelist, and disabling the member from an alert
(the customer service disables the card; the ledger then grants no points)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.events.v1 import customer_events_pb2, ledger_events_pb2
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from services.common import bus
from services.common.auth import Caller, Role
from services.common.validation import to_timestamp
from tests.support import identity
from tests.support.alert_events import caught_up, published
from tests.support.alert_model import PlainAlerts, PlainRule
from tests.support.identity import signed

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ADMIN = signed(Caller(staff_id="ops-1", role=Role.SUPER_ADMIN))


async def retry(call, what: str, timeout: float = 30.0):
    """Repeats ``call`` while it fails with NOT_FOUND / INVALID_ARGUMENT (a projection not caught up yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT) \
                    or time.monotonic() > deadline:
                raise AssertionError(f"{what}: {err.details()}") from err
        await asyncio.sleep(0.1)


def window(days: int, count: int | None = None, paid: int | None = None) -> pb.WindowCondition:
    w = pb.WindowCondition(enabled=True, days=days)
    if count is not None:
        w.min_order_count = count
    if paid is not None:
        w.min_paid_amount = paid
    return w


async def test_alerts_match_a_plain_recomputation_across_the_system(system):
    nc, js = await bus.connect(system.nats_url, "e2e-alerts")
    channels = {name: identity.channel(system.processes[name].address)
                for name in ("customer", "ledger", "alert")}
    try:
        orgs = org_grpc.OrganizationServiceStub(channels["customer"])
        members = member_grpc.MemberServiceStub(channels["customer"])
        ledger = ledger_grpc.LedgerServiceStub(channels["ledger"])
        alerts = pb_grpc.AlertServiceStub(channels["alert"])

        sh = (await orgs.CreateMall(org_pb.CreateMallRequest(request_id="m1", name="静安店", timezone="Asia/Shanghai"),
                                    metadata=ADMIN)).mall.mall_id
        la = (await orgs.CreateMall(org_pb.CreateMallRequest(request_id="m2", name="洛杉矶店",
                                                             timezone="America/Los_Angeles"),
                                    metadata=ADMIN)).mall.mall_id
        model = PlainAlerts({sh: "Asia/Shanghai", la: "America/Los_Angeles"})
        layout = [(sh, "餐饮", "1F", ["promo"]), (sh, "零售", "2F", []), (sh, "餐饮", "3F", []), (la, "零售", "B1", [])]
        stores = []
        for i, (mall_id, category, floor, tags) in enumerate(layout):
            store = (await orgs.CreateStore(org_pb.CreateStoreRequest(
                request_id=f"s{i}", mall_id=mall_id, name=f"门店{i}", category=category, floor=floor, tags=tags),
                metadata=ADMIN)).store
            stores.append(store.store_id)
            model.store(store.store_id, mall_id, category, "", floor, tuple(tags))
        s_promo, s_retail, s_food, s_la = stores
        people = []
        for i in range(6):
            m = (await members.CreateMember(member_pb.CreateMemberRequest(
                request_id=f"p{i}", phone=f"1380000{i:04d}", name=f"会员{i}"), metadata=ADMIN)).member
            people.append(m.member_id)
        ghost = (await members.CreateMember(member_pb.CreateMemberRequest(
            request_id="ghost", phone="13900000000", name="虚拟", virtual=True), metadata=ADMIN)).member.member_id
        model.excluded.add(ghost)
        # The stores, their tags and the virtual member reach the alert service through the customer's events,
        # on another stream than the orders: the orders come once the alert service knows them.
        await published(js, "CUSTOMER", "customer.member.created.v1", customer_events_pb2.MemberCreated,
                        lambda e: e.member_id == ghost)
        await caught_up(js, "CUSTOMER", "alert-customer-events")

        rules: dict[str, str] = {}

        async def create(key: str, mall_id: str, scope: pb.StoreScope, plain: PlainRule, **conditions) -> None:
            made = await retry(lambda: alerts.CreateAlertRule(pb.CreateAlertRuleRequest(
                request_id=f"rule-{key}", mall_id=mall_id, name=key, scope=scope, **conditions), metadata=ADMIN),
                f"rule {key}")
            rules[key] = made.rule.rule_id
            model.rules[made.rule.rule_id] = plain

        everything = pb.StoreScope(kind=pb.STORE_SCOPE_KIND_ALL)
        await create("单笔", sh, everything, PlainRule(sh, "all", set(), single=50_000),
                     single_order=pb.SingleOrderCondition(enabled=True, min_paid_amount=50_000))
        await create("促销门店频繁", sh, pb.StoreScope(kind=pb.STORE_SCOPE_KIND_TAG, values=["promo"]),
                     PlainRule(sh, "tag", {"promo"}, any_store=(7, 3, None)), any_store=window(7, count=3))
        await create("累计金额", sh, everything, PlainRule(sh, "all", set(), total=(30, None, 100_000)),
                     scope_total=window(30, paid=100_000))
        await create("洛杉矶当日", la, everything, PlainRule(la, "all", set(), total=(1, 2, None)),
                     scope_total=window(1, count=2))

        now = datetime.now(UTC)
        la_today = now.astimezone(__import__("zoneinfo").ZoneInfo("America/Los_Angeles")).replace(
            hour=0, minute=30, second=0, microsecond=0).astimezone(UTC)
        plan = [  # member, mall, store, paid (fen), when
            (0, sh, s_retail, 60_000, now - timedelta(days=2)),  # single order
            (1, sh, s_retail, 60_000, now - timedelta(days=95)),  # too old: outside the 90 days
            (1, sh, s_promo, 1_000, now - timedelta(days=1)),
            (1, sh, s_promo, 1_000, now - timedelta(days=2)),
            (1, sh, s_promo, 1_000, now - timedelta(days=9)),  # outside the 7 days
            (2, sh, s_promo, 1_000, now - timedelta(hours=1)),
            (2, sh, s_promo, 1_000, now - timedelta(days=3)),
            (2, sh, s_promo, 1_000, now - timedelta(days=6)),  # three at the promo store within 7 days
            (3, sh, s_food, 1_000, now), (3, sh, s_food, 1_000, now), (3, sh, s_food, 1_000, now),  # not promo
            (4, sh, s_retail, 45_000, now - timedelta(days=3)),
            (4, sh, s_food, 45_000, now - timedelta(days=20)),
            (4, sh, s_retail, 20_000, now - timedelta(days=40)),  # outside the 30 days
            (5, la, s_la, 3_000, la_today),
            (5, la, s_la, 3_000, la_today - timedelta(hours=2)),  # yesterday in Los Angeles
            (0, la, s_la, 3_000, la_today), (0, la, s_la, 3_000, la_today + timedelta(minutes=5)),  # two today
            (-1, sh, s_retail, 90_000, now),  # the virtual member
        ]
        recorded = []
        for i, (who, mall_id, store_id, paid, when) in enumerate(plan):
            member_id = ghost if who < 0 else people[who]
            request = ledger_pb.RecordOrderRequest(
                request_id=f"o{i}", member_id=member_id, mall_id=mall_id, store_id=store_id,
                channel=ledger_pb.ORDER_CHANNEL_POS, external_order_no=f"E{i}", amount=paid, paid_amount=paid,
                occur_time=to_timestamp(min(when, datetime.now(UTC))))
            order = (await retry(lambda r=request: ledger.RecordOrder(r, metadata=ADMIN), f"order {i}")).order
            model.record(order.order_id, member_id, mall_id, store_id, paid, min(when, datetime.now(UTC)))
            recorded.append(order)
        # Member 4: 45,000 + 45,000 in 30 days, less a refund of 22,500, then 40,000 more: 107,500 >= 100,000.
        refund = await ledger.RefundOrder(ledger_pb.RefundOrderRequest(
            request_id="rf1", order_id=recorded[11].order_id, amount=22_500), metadata=ADMIN)
        model.refund(recorded[11].order_id, refund.order.refunded_paid_amount, False)
        # An online order never counts.
        await ledger.RecordOrder(ledger_pb.RecordOrderRequest(
            request_id="online", member_id=people[4], mall_id=sh, store_id=s_retail,
            channel=ledger_pb.ORDER_CHANNEL_ONLINE, external_order_no="ON1", amount=90_000, paid_amount=90_000,
            occur_time=to_timestamp(now)), metadata=ADMIN)
        last = (await ledger.RecordOrder(ledger_pb.RecordOrderRequest(
            request_id="o-last", member_id=people[4], mall_id=sh, store_id=s_food,
            channel=ledger_pb.ORDER_CHANNEL_FAST_POINTS, external_order_no="E-last", amount=40_000,
            paid_amount=40_000, occur_time=to_timestamp(now)), metadata=ADMIN)).order
        model.record(last.order_id, people[4], sh, s_food, 40_000, now)
        # A full refund takes member 2's latest promo order out of the count; their alert stays.
        full = await ledger.RefundOrder(ledger_pb.RefundOrderRequest(
            request_id="rf2", order_id=recorded[5].order_id, amount=1_000), metadata=ADMIN)
        model.refund(recorded[5].order_id, full.order.refunded_paid_amount, True)

        async def observed(last_order: str, last_refund: str) -> dict:
            # The ledger's outbox has relayed the last order and refund; the alert consumer has applied them.
            await published(js, "LEDGER", "ledger.order.recorded.v1", ledger_events_pb2.OrderRecorded,
                            lambda e: e.order_id == last_order)
            await published(js, "LEDGER", "ledger.order.refunded.v1", ledger_events_pb2.OrderRefunded,
                            lambda e: e.order_id == last_refund)
            await caught_up(js, "LEDGER", "alert-ledger-orders")
            seen = {}
            listed = await alerts.ListAlerts(pb.ListAlertsRequest(page_size=1000), metadata=ADMIN)
            for alert in listed.alerts:
                detail = await alerts.GetAlert(pb.GetAlertRequest(alert_id=alert.alert_id), metadata=ADMIN)
                seen[(alert.member_id, alert.rule_id)] = (
                    {pb.ConditionKind.Name(c) for c in alert.conditions},
                    {(pb.ConditionKind.Name(o.condition), o.order_id) for o in detail.alert.orders})
            return seen

        got = await observed(last.order_id, recorded[5].order_id)
        assert got == model.alerts
        fired = {(people.index(m), next(k for k, v in rules.items() if v == r)) for m, r in got}
        assert fired == {(0, "单笔"), (2, "促销门店频繁"), (4, "累计金额"), (0, "洛杉矶当日")}

        # A rule edit: "促销门店频繁" within 14 days re-evaluates the mall's 90 days; member 1 now fires.
        await alerts.UpdateAlertRule(pb.UpdateAlertRuleRequest(
            request_id="edit", rule=pb.AlertRule(rule_id=rules["促销门店频繁"], any_store=window(14, count=3)),
            update_mask={"paths": ["any_store"]}), metadata=ADMIN)
        model.rules[rules["促销门店频繁"]] = PlainRule(sh, "tag", {"promo"}, any_store=(14, 3, None))
        deadline = time.monotonic() + 60
        while (rule := (await alerts.GetAlertRule(pb.GetAlertRuleRequest(rule_id=rules["促销门店频繁"]),
                                                  metadata=ADMIN)).rule).evaluation.state != pb.EVALUATION_STATE_DONE:
            assert time.monotonic() < deadline, "the re-evaluation did not finish"
            await asyncio.sleep(0.1)
        model.reevaluate(rules["促销门店频繁"])
        assert rule.evaluation.alerts_raised == 1
        assert await observed(last.order_id, recorded[5].order_id) == model.alerts
        assert (people[1], rules["促销门店频繁"]) in model.alerts

        # Whitelist member 0: both their alerts close as whitelisted.
        added = await alerts.AddWhitelistEntry(pb.AddWhitelistEntryRequest(request_id="wl", member_id=people[0]),
                                               metadata=ADMIN)
        assert added.alerts_closed == 2
        listed = await alerts.ListAlerts(pb.ListAlertsRequest(
            filter=pb.AlertFilter(state=pb.ALERT_STATE_WHITELISTED), page_size=100), metadata=ADMIN)
        assert {a.member_id for a in listed.alerts} == {people[0]}

        # Disable member 4 from their alert: the customer service disables the card, the alert shows it,
        # and the ledger grants the member no more points.
        target = next(a for a in (await alerts.ListAlerts(pb.ListAlertsRequest(page_size=100), metadata=ADMIN)).alerts
                      if a.member_id == people[4])
        before = await ledger.RecordOrder(ledger_pb.RecordOrderRequest(
            request_id="pts-before", member_id=people[4], mall_id=sh, store_id=s_food,
            channel=ledger_pb.ORDER_CHANNEL_POS, external_order_no="P1", amount=10_000, paid_amount=10_000,
            occur_time=to_timestamp(datetime.now(UTC))), metadata=ADMIN)
        disabled = await alerts.DisableAlertMember(pb.DisableAlertMemberRequest(request_id="dis",
                                                                                alert_id=target.alert_id),
                                                   metadata=ADMIN)
        assert disabled.alert.state == pb.ALERT_STATE_MEMBER_DISABLED and disabled.alert.member_disabled
        member = (await members.GetMember(member_pb.GetMemberRequest(member_id=people[4]), metadata=ADMIN)).member
        assert member.disabled
        await published(js, "CUSTOMER", "customer.member.status_changed.v1", customer_events_pb2.MemberStatusChanged,
                        lambda e: e.member_id == people[4] and e.disabled)
        await caught_up(js, "CUSTOMER", "ledger-customer-events")
        after = await ledger.RecordOrder(ledger_pb.RecordOrderRequest(
            request_id="pts-after", member_id=people[4], mall_id=sh, store_id=s_food,
            channel=ledger_pb.ORDER_CHANNEL_POS, external_order_no="P2", amount=10_000, paid_amount=10_000,
            occur_time=to_timestamp(datetime.now(UTC))), metadata=ADMIN)
        assert before.order.points_earned > 0 and after.order.points_earned == 0
        filtered = await alerts.ListAlerts(pb.ListAlertsRequest(
            filter=pb.AlertFilter(member_disabled=True), page_size=100), metadata=ADMIN)
        assert {a.member_id for a in filtered.alerts} == {people[4]}
    finally:
        for channel in channels.values():
            await channel.close()
        await nc.close()
