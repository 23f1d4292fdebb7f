"""Crowd packages over gRPC: the issue's example package, previewed, refreshed, paged and downloaded, equal to SQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest

from crowdpack.customer.v1 import crowd_pb2 as c
from crowdpack.customer.v1 import crowd_service_pb2 as pb
from crowdpack.customer.v1 import crowd_service_pb2_grpc
from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from services.customer.crowds.refresher import Refresher
from tests.support.crowd_index import wait_until
from tests.support.crowd_sql import SqlCrowd
from tests.support.customer import SUPER, mall_admin, rpc_error

pytestmark = pytest.mark.database("customer")


SHANGHAI = ZoneInfo("Asia/Shanghai")


def example(mall_a: str) -> c.CrowdDefinition:
    """Male card holders who are store members, OR members whose first consumption was in the last 3 days
    in the food-and-beverage stores of mall A, EXCLUDING disabled members."""
    return c.CrowdDefinition(groups=[
        c.ConditionGroup(join=c.GROUP_JOIN_INCLUDE, conditions=[
            c.Condition(gender=c.GenderCondition(genders=[m.GENDER_MALE])),
            c.Condition(card_opened=c.CardOpenedCondition(opened=True)),
            c.Condition(store_member=c.StoreMemberCondition(store_member=True))]),
        c.ConditionGroup(join=c.GROUP_JOIN_OR, conditions=[c.Condition(consumption=c.ConsumptionCondition(
            scope=c.StoreScope(mall_ids=[mall_a], categories=["food and beverage"]),
            window=c.DateWindow(last=c.RelativeSpan(count=3, unit=c.RELATIVE_UNIT_DAYS)),
            metric=c.CONSUMPTION_METRIC_FIRST_TIME))]),
        c.ConditionGroup(join=c.GROUP_JOIN_EXCLUDE, conditions=[
            c.Condition(disabled=c.DisabledCondition(disabled=True))]),
    ])


@pytest.fixture
async def world(customer, js):
    """Two malls, stores, staff, members and orders (through ledger events, as in production)."""
    stubs = customer
    a, b = await stubs.mall("Mall A"), await stubs.mall("Mall B")
    stores = {}
    for name, mall, category in [("noodles", a, "food and beverage"), ("shoes", a, "retail"),
                                 ("tea", b, "food and beverage")]:
        reply = await stubs.org.CreateStore(org_pb.CreateStoreRequest(request_id=f"s-{name}", mall_id=mall, name=name,
                                                                      category=category), metadata=SUPER)
        stores[name] = reply.store.store_id
    members = {}
    specs = {  # name: (gender, open card, store staff, disabled)
        "ann": (m.GENDER_MALE, True, True, False), "bob": (m.GENDER_MALE, True, True, True),
        "cai": (m.GENDER_MALE, False, True, False), "dan": (m.GENDER_FEMALE, True, True, False),
        "eve": (m.GENDER_FEMALE, False, False, False), "fay": (m.GENDER_FEMALE, False, False, False),
        "gus": (m.GENDER_MALE, False, False, True), "hal": (m.GENDER_MALE, False, False, False),
    }
    for i, (name, (gender, card, staff, disabled)) in enumerate(specs.items()):
        phone = f"1380000{i:04d}"
        member = (await stubs.members.CreateMember(member_pb.CreateMemberRequest(
            request_id=f"m-{name}", phone=phone, name=name, gender=gender, registration_mall_id=a),
            metadata=SUPER)).member
        members[name] = member.member_id
        if card:
            await stubs.members.OpenCard(member_pb.OpenCardRequest(request_id=f"card-{name}",
                                                                   member_id=member.member_id, mall_id=a,
                                                                   channel=m.OPEN_CHANNEL_WECHAT), metadata=SUPER)
        if staff:
            await stubs.org.CreateStaff(org_pb.CreateStaffRequest(
                request_id=f"staff-{name}", name=name, phone=phone, role=org_pb.STAFF_ROLE_STORE_STAFF,
                store_id=stores["shoes"]), metadata=SUPER)
        if disabled:
            await stubs.members.SetMemberDisabled(member_pb.SetMemberDisabledRequest(
                request_id=f"dis-{name}", member_id=member.member_id, disabled=True), metadata=SUPER)
    now = datetime.now(UTC)
    orders = [  # (member, store, days ago): first F&B consumption at mall A within 3 days -> eve, gus
        ("eve", "noodles", 1), ("fay", "noodles", 10), ("fay", "noodles", 2), ("gus", "noodles", 0),
        ("hal", "tea", 1), ("hal", "shoes", 1)]
    for n, (who, store, ago) in enumerate(orders, start=1):
        occurred = now - timedelta(days=ago)
        event = ledger_events.OrderRecorded(order_id=str(n), member_id=members[who], store_id=stores[store],
                                            mall_id=a if store != "tea" else b, channel="ORDER_CHANNEL_POS",
                                            amount=10_000, paid_amount=10_000)
        event.occur_time.FromDatetime(occurred)
        await js.publish("ledger.order.recorded.v1", event.SerializeToString(), headers={"Nats-Msg-Id": f"o{n}"})
    stub = crowd_service_pb2_grpc.CrowdServiceStub(stubs.channel)

    async def orders_indexed() -> bool:
        reply = await stub.PreviewPackage(pb.PreviewPackageRequest(mall_id=a, definition=c.CrowdDefinition(groups=[
            c.ConditionGroup(conditions=[c.Condition(consumption=c.ConsumptionCondition(
                window=c.DateWindow(last=c.RelativeSpan(count=30, unit=c.RELATIVE_UNIT_DAYS)),
                metric=c.CONSUMPTION_METRIC_COUNT, range=c.Int64Range(min=1)))])])), metadata=SUPER)
        return reply.member_count == 4

    assert await wait_until(orders_indexed), "the orders never reached the crowd index"
    return stubs, stub, a, members


async def sql_answer(customer, definition: c.CrowdDefinition) -> set[int]:
    async with customer.db.read() as session:
        return await SqlCrowd(session, datetime.now(SHANGHAI).date(), SHANGHAI).evaluate(definition)


async def test_the_example_package_end_to_end_equals_sql(world):
    stubs, stub, mall_a, members = world
    definition = example(mall_a)
    expected = await sql_answer(stubs, definition)
    assert expected == {int(members["ann"]), int(members["eve"])}

    preview = await stub.PreviewPackage(pb.PreviewPackageRequest(mall_id=mall_a, definition=definition),
                                        metadata=SUPER)
    assert preview.member_count == len(expected)

    created = (await stub.CreatePackage(pb.CreatePackageRequest(
        request_id="p1", mall_id=mall_a, name="new F&B or male staff", remark="demo", definition=definition),
        metadata=SUPER)).package
    assert created.status == pb.PACKAGE_STATUS_UPDATING and created.creator_id == "super-1"

    async def ready():
        got = (await stub.GetPackage(pb.GetPackageRequest(package_id=created.package_id), metadata=SUPER)).package
        return got if got.status == pb.PACKAGE_STATUS_READY else None

    package = await wait_until(ready)
    assert package and package.member_count == len(expected) and package.HasField("compute_time")
    import pyroaring

    assert set(pyroaring.BitMap.deserialize(package.result_bitmap)) == expected

    page1 = await stub.ListPackageMembers(pb.ListPackageMembersRequest(package_id=created.package_id, page_size=1),
                                          metadata=SUPER)
    page2 = await stub.ListPackageMembers(pb.ListPackageMembersRequest(
        package_id=created.package_id, page_size=1, page_token=page1.next_page_token), metadata=SUPER)
    assert page1.total_size == 2 and not page2.next_page_token
    assert {int(x.member_id) for x in [*page1.members, *page2.members]} == expected

    export = await stub.ExportPackageMembers(pb.ExportPackageMembersRequest(package_id=created.package_id),
                                             metadata=SUPER)
    rows = list(csv.DictReader(io.StringIO(export.csv.decode("utf-8-sig"))))
    assert export.csv.startswith("\ufeff".encode()) and {int(r["会员编号"]) for r in rows} == expected
    assert {r["已禁用"] for r in rows} == {"否"} and {r["性别"] for r in rows} <= {"男", "女", "未知"}
    err = await rpc_error(stub.ExportPackageMembers(pb.ExportPackageMembersRequest(package_id=created.package_id),
                                                    metadata=mall_admin(mall_a)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    # The index stays fresh: re-enabling bob brings him in, without a rebuild.
    await stubs.members.SetMemberDisabled(member_pb.SetMemberDisabledRequest(
        request_id="enable-bob", member_id=members["bob"], disabled=False), metadata=SUPER)

    async def bob_counted():
        reply = await stub.PreviewPackage(pb.PreviewPackageRequest(mall_id=mall_a, definition=definition),
                                          metadata=SUPER)
        return reply.member_count == 3

    assert await wait_until(bob_counted)
    assert len(await sql_answer(stubs, definition)) == 3
    refreshed = await stub.RefreshPackage(pb.RefreshPackageRequest(request_id="r1", package_id=created.package_id),
                                          metadata=SUPER)
    assert refreshed.package.status == pb.PACKAGE_STATUS_UPDATING

    async def three():
        got = (await stub.GetPackage(pb.GetPackageRequest(package_id=created.package_id), metadata=SUPER)).package
        return got.status == pb.PACKAGE_STATUS_READY and got.member_count == 3

    assert await wait_until(three)


async def test_categories_and_package_management(world):
    stubs, stub, mall_a, _ = world
    cats = (await stub.ListCategories(pb.ListCategoriesRequest(mall_id=mall_a), metadata=SUPER)).categories
    assert [(x.name, x.is_default) for x in cats] == [("未分类", True)]
    vip = (await stub.CreateCategory(pb.CreateCategoryRequest(request_id="c1", mall_id=mall_a, name="VIP"),
                                     metadata=SUPER)).category
    new = (await stub.CreateCategory(pb.CreateCategoryRequest(request_id="c2", mall_id=mall_a, name="New"),
                                     metadata=SUPER)).category
    err = await rpc_error(stub.CreateCategory(pb.CreateCategoryRequest(request_id="c3", mall_id=mall_a, name="VIP"),
                                              metadata=SUPER))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    default = cats[0]
    reordered = await stub.ReorderCategories(pb.ReorderCategoriesRequest(
        request_id="o1", mall_id=mall_a, category_ids=[new.category_id, default.category_id, vip.category_id]),
        metadata=SUPER)
    assert [x.name for x in reordered.categories] == ["New", "未分类", "VIP"]
    listed = (await stub.ListCategories(pb.ListCategoriesRequest(mall_id=mall_a), metadata=SUPER)).categories
    assert [x.name for x in listed] == ["New", "未分类", "VIP"]
    renamed = await stub.RenameCategory(pb.RenameCategoryRequest(request_id="rn", category_id=vip.category_id,
                                                                 name="VIPs"), metadata=SUPER)
    assert renamed.category.name == "VIPs"
    err = await rpc_error(stub.DeleteCategory(pb.DeleteCategoryRequest(request_id="d0",
                                                                       category_id=default.category_id),
                                              metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    definition = example(mall_a)
    package = (await stub.CreatePackage(pb.CreatePackageRequest(
        request_id="p", mall_id=mall_a, category_id=vip.category_id, name="vip", definition=definition),
        metadata=SUPER)).package
    await stub.DeleteCategory(pb.DeleteCategoryRequest(request_id="d1", category_id=vip.category_id), metadata=SUPER)
    moved = (await stub.GetPackage(pb.GetPackageRequest(package_id=package.package_id), metadata=SUPER)).package
    assert moved.category_id == default.category_id

    # Bad definitions name the bad part and write nothing.
    bad_cases = [
        (c.CrowdDefinition(), "definition.groups"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(join=c.GROUP_JOIN_OR, conditions=[
            c.Condition(disabled=c.DisabledCondition())])]), "definition.groups[0].join"),
        (c.CrowdDefinition(groups=[c.ConditionGroup()]), "definition.groups[0].conditions"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(age=c.AgeCondition(
            years=c.Int64Range(min=50, max=20)))])]), "definition.groups[0].conditions[0].age.years"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(tags=c.TagCondition(tag_ids=["999"]))])]),
         "definition.groups[0].conditions[0].tags.tag_ids"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(consumption=c.ConsumptionCondition(
            window=c.DateWindow(last=c.RelativeSpan(count=3, unit=c.RELATIVE_UNIT_DAYS)),
            metric=c.CONSUMPTION_METRIC_TOTAL))])]), "definition.groups[0].conditions[0].consumption.range"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(card_open_time=c.CardOpenTimeCondition(
            window=c.DateWindow(fixed=c.FixedDates(from_date="2026-02-30", to_date="2026-03-01"))))])]),
         "definition.groups[0].conditions[0].card_open_time.window.fixed.from_date"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(
            card_open_channel=c.CardOpenChannelCondition())])]),
         "definition.groups[0].conditions[0].card_open_channel.channels"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(native_card=c.NativeCardCondition(
            channel=m.OPEN_CHANNEL_IMPORT, opened=True))])]),
         "definition.groups[0].conditions[0].native_card.channel"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(
            registration_time=c.RegistrationTimeCondition(window=c.DateWindow(ever=False)))])]),
         "definition.groups[0].conditions[0].registration_time.window.ever"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(level_change=c.LevelChangeCondition(
            window=c.DateWindow(this_month=True), directions=[9]))])]),
         "definition.groups[0].conditions[0].level_change.directions"),
        (c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[c.Condition(level_change=c.LevelChangeCondition(
            window=c.DateWindow(this_month=True), level=11))])]),
         "definition.groups[0].conditions[0].level_change.level"),
    ]
    for i, (definition, field) in enumerate(bad_cases):
        err = await rpc_error(stub.CreatePackage(pb.CreatePackageRequest(
            request_id=f"bad{i}", mall_id=mall_a, name=f"bad{i}", definition=definition), metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(field + ":"), err.details()
        err = await rpc_error(stub.PreviewPackage(pb.PreviewPackageRequest(mall_id=mall_a, definition=definition),
                                                  metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListPackages(pb.ListPackagesRequest(mall_id=mall_a), metadata=SUPER)
    assert [p.name for p in listed.packages] == ["vip"]
    err = await rpc_error(stub.PreviewPackage(pb.PreviewPackageRequest(mall_id=mall_a, definition=example(mall_a)),
                                              metadata=mall_admin("424242")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_failed_refresh_shows_its_error_and_is_retried_until_it_succeeds(world):
    stubs, stub, mall_a, _ = world
    tag_definition = c.CrowdDefinition(groups=[c.ConditionGroup(conditions=[
        c.Condition(tags=c.TagCondition(tag_ids=["1"]))])])
    package = (await stub.CreatePackage(pb.CreatePackageRequest(
        request_id="p", mall_id=mall_a, name="tagged", definition=tag_definition), metadata=SUPER)).package
    # The index fails during a refresh (simulated by a refresher whose clock and index we drive). The service's own
    # refresher first finishes the package's first computation; then the package is asked again for a moment an
    # hour ahead, which only the test's refresher, its clock two hours ahead, sees as due.
    async def ready():
        got = (await stub.GetPackage(pb.GetPackageRequest(package_id=package.package_id), metadata=SUPER)).package
        return got.status == pb.PACKAGE_STATUS_READY and not got.failure_reason

    assert await wait_until(ready)
    ahead = datetime.now(UTC) + timedelta(hours=2)
    refresher = Refresher(stubs.db, None, clock=lambda: ahead)  # type: ignore[arg-type]

    class Broken:
        async def evaluate(self, _translation):
            raise RuntimeError("index unavailable")

    refresher.index = Broken()  # type: ignore[assignment]
    async with stubs.db.transaction() as session:
        from services.customer.crowds.models import CrowdPackage

        row = await session.get(CrowdPackage, int(package.package_id))
        row.status, row.refresh_requested_at, row.next_attempt_at = pb.PACKAGE_STATUS_UPDATING, datetime.now(UTC), \
            datetime.now(UTC) + timedelta(hours=1)
    assert await refresher.refresh_next()
    failed = (await stub.GetPackage(pb.GetPackageRequest(package_id=package.package_id), metadata=SUPER)).package
    assert failed.status == pb.PACKAGE_STATUS_FAILED and "index unavailable" in failed.failure_reason
    await stub.RefreshPackage(pb.RefreshPackageRequest(request_id="again", package_id=package.package_id),
                              metadata=SUPER)

    assert await wait_until(ready)


def test_daily_moment_is_in_the_mever_zone():
    refresher = Refresher(None, None, daily_hour=3)  # type: ignore[arg-type]
    # 2026-11-22 18:00 UTC is 02:00 on the 23rd in Shanghai: the latest 03:00 there was on the 22nd.
    due = refresher.daily_due(datetime(2026, 11, 22, 18, tzinfo=UTC), "Asia/Shanghai")
    assert due.astimezone(SHANGHAI).date() == date(2026, 11, 22) and due.astimezone(SHANGHAI).hour == 3
    due = refresher.daily_due(datetime(2026, 11, 22, 20, tzinfo=UTC), "Asia/Shanghai")
    assert due.astimezone(SHANGHAI).date() == date(2026, 11, 23)


async def test_the_member_list_crowd_filter_uses_the_same_engine(world):
    stubs, _, mall_a, members = world
    definition = example(mall_a)
    expected = await sql_answer(stubs, definition)
    seen, token = [], ""
    while True:
        page = await stubs.members.ListMembers(member_pb.ListMembersRequest(
            page_size=1, page_token=token, include_total=True, order_by=member_pb.MEMBER_ORDER_BY_SPEND_COUNT,
            filter=member_pb.MemberFilter(crowd=definition, crowd_mall_id=mall_a)), metadata=SUPER)
        seen += [int(x.member_id) for x in page.members]
        assert page.total_size == len(expected)
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(expected)
    narrowed = await stubs.members.ListMembers(member_pb.ListMembersRequest(filter=member_pb.MemberFilter(
        crowd=definition, crowd_mall_id=mall_a, card_opened=member_pb.TRI_STATE_YES)), metadata=SUPER)
    assert [int(x.member_id) for x in narrowed.members] == [int(members["ann"])]
    err = await rpc_error(stubs.members.ListMembers(member_pb.ListMembersRequest(filter=member_pb.MemberFilter(
        crowd=c.CrowdDefinition(), crowd_mall_id=mall_a)), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("filter.crowd.groups:")
