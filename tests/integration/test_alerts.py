"""The alert service on real NATS and a real database: rules, the alerts orders raise (compared with a plain
re-computation), re-evaluation after an edit, the whitelist, listing, detail and export."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from crowdpack.events.v1 import customer_events_pb2 as customer_events
from services.alert.assembly import build_spec
from services.alert.config import AlertSettings
from services.common.auth import Caller, Role
from tests.support import alert_events as ev
from tests.support.alert_model import PlainAlerts, PlainRule
from tests.support.identity import signed
from tests.support.runtime import running_service
from tests.support.waiting import eventually

ADMIN = signed(Caller(staff_id="admin-1", role=Role.SUPER_ADMIN))
EDITOR = signed(Caller(staff_id="admin-2", role=Role.SUPER_ADMIN))
SHANGHAI, LOS_ANGELES = "Asia/Shanghai", "America/Los_Angeles"


def settings_for(database_url: str, **extra: object) -> AlertSettings:
    return AlertSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05,
                         digest_check_s=3600, reevaluation_batch=7, **extra)


async def customer_done(js) -> None:
    await ev.caught_up(js, "CUSTOMER", "alert-customer-events")


async def orders_done(js) -> None:
    await ev.caught_up(js, "LEDGER", "alert-ledger-orders")


def window(days: int, count: int | None = None, paid: int | None = None) -> pb.WindowCondition:
    w = pb.WindowCondition(enabled=True, days=days)
    if count is not None:
        w.min_order_count = count
    if paid is not None:
        w.min_paid_amount = paid
    return w


async def all_alerts(stub: pb_grpc.AlertServiceStub, **filters: object) -> list[pb.Alert]:
    found, token = [], ""
    while True:
        page = await stub.ListAlerts(pb.ListAlertsRequest(filter=pb.AlertFilter(**filters), page_size=7,
                                                          page_token=token), metadata=ADMIN)
        found += page.alerts
        token = page.next_page_token
        if not token:
            return found


async def observed(stub: pb_grpc.AlertServiceStub) -> dict[tuple[str, str], tuple[set[str], set[tuple[str, str]]]]:
    """(member, rule) -> (conditions, (condition, order) pairs), as the service holds them."""
    seen = {}
    for alert in await all_alerts(stub):
        detail = await stub.GetAlert(pb.GetAlertRequest(alert_id=alert.alert_id), metadata=ADMIN)
        seen[(alert.member_id, alert.rule_id)] = (
            {pb.ConditionKind.Name(c) for c in alert.conditions},
            {(pb.ConditionKind.Name(o.condition), o.order_id) for o in detail.alert.orders})
    return seen


async def _stream_has(js, stream: str, count: int) -> bool:
    return (await js.stream_info(stream)).state.messages == count


async def wait_evaluated(stub: pb_grpc.AlertServiceStub, rule_id: str) -> pb.AlertRule:
    import asyncio
    for _ in range(600):
        rule = (await stub.GetAlertRule(pb.GetAlertRuleRequest(rule_id=rule_id), metadata=ADMIN)).rule
        if rule.evaluation.state == pb.EVALUATION_STATE_DONE:
            return rule
        await asyncio.sleep(0.05)
    raise AssertionError(f"rule {rule_id} still {pb.EvaluationState.Name(rule.evaluation.state)}")


async def test_orders_raise_exactly_the_alerts_a_plain_recomputation_expects(database_url, nats_url, js, tmp_path):
    rng = random.Random(18)
    model = PlainAlerts({"1": SHANGHAI, "2": LOS_ANGELES})
    async with running_service(build_spec, settings_for(database_url), nats_url=nats_url,
                               state_dir=tmp_path) as (_, channel):
        stub = pb_grpc.AlertServiceStub(channel)
        await ev.mall(js, "1", "一号商场", SHANGHAI)
        await ev.mall(js, "2", "二号商场", LOS_ANGELES)
        layout = {"11": ("1", "餐饮", "正餐", "1F", ("promo",)), "12": ("1", "餐饮", "快餐", "2F", ()),
                  "13": ("1", "零售", "服饰", "2F", ()), "14": ("1", "零售", "数码", "3F", ("promo", "new")),
                  "21": ("2", "餐饮", "正餐", "B1", ()), "22": ("2", "零售", "服饰", "B1", ()),
                  "23": ("2", "零售", "数码", "1F", ())}
        for sid, (mid, cat, fmt, floor, tags) in layout.items():
            await ev.store(js, sid, mid, category=cat, business_format=fmt, floor=floor, tags=tags)
            model.store(sid, mid, cat, fmt, floor, tags)
        await ev.publish(js, customer_events.MemberCreated(member_id="999", virtual=True))
        model.excluded.add("999")
        await customer_done(js)

        specs = [
            ("1", "大额单笔", pb.StoreScope(kind=pb.STORE_SCOPE_KIND_ALL), dict(
                single_order=pb.SingleOrderCondition(enabled=True, min_paid_amount=50_000)),
             PlainRule("1", "all", set(), single=50_000)),
            ("1", "餐饮频繁", pb.StoreScope(kind=pb.STORE_SCOPE_KIND_CATEGORY, values=["餐饮"]), dict(
                any_store=window(7, count=3)), PlainRule("1", "category", {"餐饮"}, any_store=(7, 3, None))),
            ("1", "促销累计", pb.StoreScope(kind=pb.STORE_SCOPE_KIND_TAG, values=["promo"]), dict(
                scope_total=window(30, paid=100_000)), PlainRule("1", "tag", {"promo"}, total=(30, None, 100_000))),
            ("1", "指定门店", pb.StoreScope(kind=pb.STORE_SCOPE_KIND_STORES, values=["11", "13"]), dict(
                any_store=window(3, paid=30_000), scope_total=window(10, count=5)),
             PlainRule("1", "stores", {"11", "13"}, any_store=(3, None, 30_000), total=(10, 5, None))),
            ("2", "地下一层", pb.StoreScope(kind=pb.STORE_SCOPE_KIND_FLOOR, values=["B1"]), dict(
                single_order=pb.SingleOrderCondition(enabled=True, min_paid_amount=80_000),
                scope_total=window(2, count=2)), PlainRule("2", "floor", {"B1"}, single=80_000, total=(2, 2, None))),
        ]
        rule_ids = []
        for i, (mall_id, name, scope, conditions, plain) in enumerate(specs):
            created = await stub.CreateAlertRule(pb.CreateAlertRuleRequest(
                request_id=f"rule-{i}", mall_id=mall_id, name=name, scope=scope, **conditions), metadata=ADMIN)
            rule_ids.append(created.rule.rule_id)
            model.rules[created.rule.rule_id] = plain
            assert created.rule.creator_id == created.rule.editor_id == "admin-1"
        for rule_id in rule_ids:
            await wait_evaluated(stub, rule_id)  # nothing to find yet: no orders

        now = datetime.now(UTC)
        members = [str(100 + i) for i in range(30)] + ["999"]
        stores_of = {"1": ["11", "12", "13", "14"], "2": ["21", "22", "23"]}
        placed: list[tuple[str, str, str, str, int]] = []
        seq = 0

        async def place(n: int) -> None:
            nonlocal seq
            for _ in range(n):
                seq += 1
                member = rng.choice(members)
                mall_id = rng.choice(["1", "1", "2"])
                store_id = rng.choice(stores_of[mall_id])
                age = timedelta(days=rng.choice([0, 0, 1, 2, 3, 5, 8, 12, 29, 31, 60, 89, 90, 95]),
                                hours=rng.uniform(0, 23.9))
                paid = rng.choice([500, 2_000, 9_000, 15_000, 35_000, 60_000, 90_000])
                online = rng.random() < 0.08
                oid = str(5000 + seq)
                await ev.order(js, oid, member, mall_id, store_id, paid, now - age,
                               channel="ORDER_CHANNEL_ONLINE" if online else rng.choice(
                                   ["ORDER_CHANNEL_POS", "ORDER_CHANNEL_FAST_POINTS", "ORDER_CHANNEL_LIGHTNING_PAY",
                                    "ORDER_CHANNEL_PHOTO_POINTS"]))
                model.record(oid, member, mall_id, store_id, paid, now - age, online)
                if not online:
                    placed.append((oid, member, mall_id, store_id, paid))
                if placed and rng.random() < 0.15:  # a refund of an earlier order, partial or full
                    r_oid, r_member, r_mall, r_store, r_paid = rng.choice(placed)
                    full = rng.random() < 0.5
                    refunded = r_paid if full else r_paid // 2
                    await ev.refund(js, r_oid, r_member, r_mall, r_store, r_paid, refunded, full)
                    model.refund(r_oid, refunded, full)
                    await orders_done(js)  # the model applies the refund before the next order, as must the service

        await place(150)
        await orders_done(js)
        # Store 12 gains the promo tag: it enters the tag-scoped rule's scope for the orders that follow.
        await ev.store(js, "12", "1", category="餐饮", business_format="快餐", floor="2F", tags=("promo",))
        model.store("12", "1", "餐饮", "快餐", "2F", ("promo",))
        await customer_done(js)
        await place(150)
        await orders_done(js)

        expected = {(m, r): v for (m, r), v in model.alerts.items()}
        got = await observed(stub)
        assert got == expected
        # The seeded data makes every rule fire but the strict one the edit below relaxes.
        assert {r for _, r in expected} == set(rule_ids) - {rule_ids[1]}
        assert not any(m == "999" for m, _ in got)  # a virtual member never raises an alert

        # One alert per member and rule, with first/last trigger times.
        alerts = await all_alerts(stub)
        assert len({(a.member_id, a.rule_id) for a in alerts}) == len(alerts)
        assert all(a.first_trigger_time.ToDatetime() <= a.last_trigger_time.ToDatetime() for a in alerts)
        # alert.alert.raised.v1, one per opened alert, relayed by the outbox.
        await eventually(lambda: _stream_has(js, "ALERT", len(alerts)))

        # A rule edit: lower thresholds re-evaluate the mall's last 90 days in the background.
        edited = await stub.UpdateAlertRule(pb.UpdateAlertRuleRequest(
            request_id="edit-1", rule=pb.AlertRule(rule_id=rule_ids[1], any_store=window(14, count=2)),
            update_mask={"paths": ["any_store"]}), metadata=EDITOR)
        assert edited.rule.editor_id == "admin-2" and edited.rule.creator_id == "admin-1"
        assert edited.rule.evaluation.state in (pb.EVALUATION_STATE_PENDING, pb.EVALUATION_STATE_RUNNING,
                                                pb.EVALUATION_STATE_DONE)
        model.rules[rule_ids[1]] = PlainRule("1", "category", {"餐饮"}, any_store=(14, 2, None))
        done = await wait_evaluated(stub, rule_ids[1])
        model.reevaluate(rule_ids[1])
        assert done.evaluation.members_done == done.evaluation.members_total > 0
        assert done.evaluation.alerts_raised == sum(1 for _, r in model.alerts if r == rule_ids[1]) > 0
        assert await observed(stub) == model.alerts

        # The whitelist closes a member's open alerts; their later orders raise nothing.
        victim = sorted({m for m, _ in model.alerts})[0]
        open_before = [a for a in await all_alerts(stub) if a.member_id == victim]
        added = await stub.AddWhitelistEntry(pb.AddWhitelistEntryRequest(
            request_id="w-1", member_id=victim, reason="VIP"), metadata=ADMIN)
        assert added.alerts_closed == len(open_before) > 0
        assert {a.state for a in await all_alerts(stub) if a.member_id == victim} == {pb.ALERT_STATE_WHITELISTED}
        model.excluded.add(victim)
        for i in range(4):
            await ev.order(js, f"9{i}", victim, "1", "11", 99_000, now)
            model.record(f"9{i}", victim, "1", "11", 99_000, now)
        await orders_done(js)
        assert await observed(stub) == model.alerts

        # Filters: by rule, by state, by time range; a mall admin sees only their malls.
        by_rule = await all_alerts(stub, rule_id=rule_ids[0])
        assert {a.rule_id for a in by_rule} == {rule_ids[0]}
        assert len(by_rule) == sum(1 for _, r in model.alerts if r == rule_ids[0])
        assert await all_alerts(stub, state=pb.ALERT_STATE_WHITELISTED) == \
            [a for a in await all_alerts(stub) if a.member_id == victim]
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await all_alerts(stub, start_time=future) == []
        mall2 = signed(Caller(staff_id="m2", role=Role.MALL_ADMIN, mall_ids=frozenset({"2"})))
        listed = await stub.ListAlerts(pb.ListAlertsRequest(page_size=1000), metadata=mall2)
        assert {a.mall_id for a in listed.alerts} == {"2"}
        assert len(listed.alerts) == sum(1 for _, r in model.alerts if model.rules[r].mall == "2")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListAlerts(pb.ListAlertsRequest(filter=pb.AlertFilter(mall_id="1")), metadata=mall2)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Export: super admins only; Excel-ready encodings with Chinese headers.
        for encoding, codec in [(pb.EXPORT_ENCODING_UTF8_BOM, "utf-8-sig"), (pb.EXPORT_ENCODING_GB18030, "gb18030")]:
            exported = await stub.ExportAlerts(pb.ExportAlertsRequest(encoding=encoding), metadata=ADMIN)
            if codec == "utf-8-sig":
                assert exported.content.startswith(b"\xef\xbb\xbf")
            rows = list(csv.reader(io.StringIO(exported.content.decode(codec))))
            assert rows[0][:5] == ["预警编号", "商场编号", "会员编号", "规则编号", "规则名称"]
            assert len(rows) - 1 == exported.row_count == len(model.alerts)
            assert {r[4] for r in rows[1:]} <= {s[1] for s in specs}
            assert {r[7] for r in rows[1:]} <= {"是", "否"} and {r[8] for r in rows[1:]} <= {"是", "否"}
            assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", r[9]) for r in rows[1:])
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ExportAlerts(pb.ExportAlertsRequest(), metadata=mall2)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_rules_crud_limit_and_bad_input(database_url, nats_url, js, tmp_path):
    async with running_service(build_spec, settings_for(database_url), nats_url=nats_url,
                               state_dir=tmp_path) as (_, channel):
        stub = pb_grpc.AlertServiceStub(channel)
        await ev.mall(js, "1", "一号商场", SHANGHAI)
        await ev.mall(js, "2", "二号商场", SHANGHAI)
        await ev.store(js, "11", "1", category="餐饮")
        await ev.store(js, "21", "2", category="餐饮")
        await customer_done(js)
        good = dict(mall_id="1", name="规则", scope=pb.StoreScope(kind=pb.STORE_SCOPE_KIND_STORES, values=["11"]),
                    single_order=pb.SingleOrderCondition(enabled=True, min_paid_amount=1000))
        bad_cases = [
            ({"any_store": window(0, count=1)}, "any_store.days"),
            ({"scope_total": window(91, count=1)}, "scope_total.days"),
            ({"any_store": window(7, count=0)}, "any_store.min_order_count"),
            ({"scope_total": window(7, paid=-5)}, "scope_total.min_paid_amount"),
            ({"single_order": pb.SingleOrderCondition(enabled=True, min_paid_amount=0)},
             "single_order.min_paid_amount"),
            ({"single_order": pb.SingleOrderCondition(enabled=False)}, "single_order.enabled"),
            ({"scope": pb.StoreScope(kind=pb.STORE_SCOPE_KIND_STORES)}, "scope.values"),
            ({"scope": pb.StoreScope(kind=pb.STORE_SCOPE_KIND_STORES, values=["77"])}, "scope.values[0]"),
            ({"scope": pb.StoreScope(kind=pb.STORE_SCOPE_KIND_STORES, values=["11", "21"])}, "scope.values[1]"),
            ({"name": ""}, "name"),
            ({"name": "长" * 51}, "name"),
        ]
        for i, (change, field) in enumerate(bad_cases):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.CreateAlertRule(pb.CreateAlertRuleRequest(request_id=f"bad-{i}", **{**good, **change}),
                                           metadata=ADMIN)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert info.value.details().startswith(f"{field}:"), info.value.details()
        assert (await stub.ListAlertRules(pb.ListAlertRulesRequest(mall_id="1"), metadata=ADMIN)).rules == []

        created = [await stub.CreateAlertRule(pb.CreateAlertRuleRequest(request_id=f"ok-{i}", **good), metadata=ADMIN)
                   for i in range(20)]
        again = await stub.CreateAlertRule(pb.CreateAlertRuleRequest(request_id="ok-0", **good), metadata=ADMIN)
        assert again == created[0]  # a retried request answers as the first did
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateAlertRule(pb.CreateAlertRuleRequest(request_id="ok-20", **good), metadata=ADMIN)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        other = await stub.CreateAlertRule(pb.CreateAlertRuleRequest(
            request_id="other", **{**good, "mall_id": "2", "scope": pb.StoreScope(kind=pb.STORE_SCOPE_KIND_ALL)}),
            metadata=ADMIN)
        assert other.rule.mall_id == "2"  # the limit is per mall

        rule_id = created[0].rule.rule_id
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.UpdateAlertRule(pb.UpdateAlertRuleRequest(
                request_id="u-bad", rule=pb.AlertRule(rule_id=rule_id, any_store=window(100, count=1)),
                update_mask={"paths": ["any_store"]}), metadata=EDITOR)
        assert info.value.details().startswith("rule.any_store.days:")
        renamed = await stub.UpdateAlertRule(pb.UpdateAlertRuleRequest(
            request_id="u-1", rule=pb.AlertRule(rule_id=rule_id, name="新名字"), update_mask={"paths": ["name"]}),
            metadata=EDITOR)
        assert (renamed.rule.name, renamed.rule.editor_id, renamed.rule.creator_id) == ("新名字", "admin-2", "admin-1")
        assert renamed.rule.update_time.ToDatetime() >= renamed.rule.create_time.ToDatetime()
        deleted = await stub.DeleteAlertRule(pb.DeleteAlertRuleRequest(request_id="d-1", rule_id=rule_id),
                                             metadata=ADMIN)
        assert deleted.rule.rule_id == rule_id
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetAlertRule(pb.GetAlertRuleRequest(rule_id=rule_id), metadata=ADMIN)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        replaced = await stub.CreateAlertRule(pb.CreateAlertRuleRequest(request_id="ok-21", **good), metadata=ADMIN)
        assert replaced.rule.rule_id  # a deleted rule frees its place
        assert len((await stub.ListAlertRules(pb.ListAlertRulesRequest(mall_id="1"), metadata=ADMIN)).rules) == 20

        mall2 = signed(Caller(staff_id="m2", role=Role.MALL_ADMIN, mall_ids=frozenset({"2"})))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateAlertRule(pb.CreateAlertRuleRequest(request_id="x", **good), metadata=mall2)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
