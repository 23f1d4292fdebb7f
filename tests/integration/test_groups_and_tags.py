"""Groups and tags over gRPC, for members and business customers alike, on SQLite and PostgreSQL.

The default group (first, fixed), groups created, renamed and deleted (their customers go back
to the default group), bulk moves; seven predefined tags plus custom ones, bulk tagging that
never duplicates a tag, the timeline entry and event of each change, scopes, all-or-nothing
bulk calls.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import grpc
import pytest
from sqlalchemy import func, select

from crowdpack.customer.v1 import business_customer_service_pb2 as biz_pb
from crowdpack.customer.v1 import business_customer_service_pb2_grpc as biz_grpc
from crowdpack.customer.v1 import classification_service_pb2 as pb
from crowdpack.customer.v1 import classification_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.auth import Caller, Role
from services.common.db import Database
from services.customer.classification.models import CustomerTag
from services.customer.config import CustomerSettings
from services.customer.models import TimelineEntry
from services.customer.service import build_spec
from tests.support.customer import rpc_error, violated_field
from tests.support.identity import signed
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("customer")


SUPER = signed(Caller(staff_id="super-1", role=Role.SUPER_ADMIN))
MEMBER = signed(Caller(staff_id="1", role=Role.MEMBER))
PREDEFINED = ["重点客户", "战略客户", "普通客户", "流失客户", "高价值客户", "长期合作", "新客户"]


def sales(staff_id: str) -> tuple[tuple[str, str], ...]:
    return signed(Caller(staff_id=staff_id, role=Role.SALES))


def mall_admin(*mall_ids: str) -> tuple[tuple[str, str], ...]:
    return signed(Caller(staff_id="mall-admin-1", role=Role.MALL_ADMIN, mall_ids=frozenset(mall_ids)))


@dataclass
class Stubs:
    cls: pb_grpc.ClassificationServiceStub
    business: biz_grpc.BusinessCustomerServiceStub
    members: member_grpc.MemberServiceStub
    org: org_grpc.OrganizationServiceStub
    db: Database

    async def member(self, phone: str, mall_id: str = "") -> str:
        reply = await self.members.CreateMember(member_pb.CreateMemberRequest(
            request_id=f"m-{phone}", phone=phone, registration_mall_id=mall_id), metadata=SUPER)
        return reply.member.member_id

    async def business_customer(self, name: str, metadata=SUPER) -> str:
        reply = await self.business.CreateBusinessCustomer(biz_pb.CreateBusinessCustomerRequest(
            request_id=f"b-{name}", name=name), metadata=metadata)
        return reply.business_customer.customer_id

    async def groups(self, metadata=SUPER, page_size: int = 0) -> list[tuple[str, str, int]]:
        out, token = [], ""
        while True:
            page = await self.cls.ListCustomerGroups(pb.ListCustomerGroupsRequest(
                page_size=page_size, page_token=token), metadata=metadata)
            out += [(g.group_id, g.name, g.customer_count) for g in page.groups]
            token = page.next_page_token
            if not token:
                return out

    async def tags(self, metadata=SUPER, page_size: int = 0) -> list[pb.Tag]:
        out, token = [], ""
        while True:
            page = await self.cls.ListTags(pb.ListTagsRequest(page_size=page_size, page_token=token),
                                           metadata=metadata)
            out += list(page.tags)
            token = page.next_page_token
            if not token:
                return out

    async def tags_of(self, customer_id: str, page_size: int = 0) -> list[str]:
        out, token = [], ""
        while True:
            page = await self.cls.ListCustomerTags(pb.ListCustomerTagsRequest(
                customer_id=customer_id, page_size=page_size, page_token=token), metadata=SUPER)
            out += [t.name for t in page.tags]
            token = page.next_page_token
            if not token:
                return out

    async def timeline(self, kind: str) -> list[tuple[int, dict, str]]:
        async with self.db.read() as session:
            rows = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == kind)
                                          .order_by(TimelineEntry.id))).all()
        return [(r.customer_id, json.loads(r.detail), r.actor_id) for r in rows]

    async def pair_count(self) -> int:
        async with self.db.read() as session:
            return await session.scalar(select(func.count()).select_from(CustomerTag))


@pytest.fixture
async def svc(database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        yield Stubs(pb_grpc.ClassificationServiceStub(channel), biz_grpc.BusinessCustomerServiceStub(channel),
                    member_grpc.MemberServiceStub(channel), org_grpc.OrganizationServiceStub(channel), rt.ctx.db)




# --- groups


async def test_the_default_group_is_listed_first_and_cannot_be_renamed_or_deleted(svc):
    m1, m2 = await svc.member("13800000001"), await svc.member("13800000002")
    b1 = await svc.business_customer("Acme")
    assert await svc.groups() == [("default", "默认分组", 3)]
    east = (await svc.cls.CreateCustomerGroup(pb.CreateCustomerGroupRequest(request_id="g1", name=" East "),
                                              metadata=SUPER)).group
    assert (east.name, east.is_default, east.customer_count) == ("East", False, 0) and east.create_time.seconds > 0
    await svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
        request_id="mv", customer_ids=[m1, b1], group_id=east.group_id), metadata=SUPER)
    assert await svc.groups() == [("default", "默认分组", 1), (east.group_id, "East", 2)]
    for call in (svc.cls.RenameCustomerGroup(pb.RenameCustomerGroupRequest(request_id="r", group_id="default",
                                                                           name="Other"), metadata=SUPER),
                 svc.cls.DeleteCustomerGroup(pb.DeleteCustomerGroupRequest(request_id="d", group_id="default"),
                                             metadata=SUPER)):
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and violated_field(err) == "group_id"
    assert (await svc.groups())[0] == ("default", "默认分组", 1)
    assert m2


async def test_groups_are_created_renamed_and_deleted_and_deleting_moves_customers_home(svc):
    ids = [await svc.member(f"1380000001{i}") for i in range(3)]
    created = []
    for i, name in enumerate(["North", "South", "West"]):
        created.append((await svc.cls.CreateCustomerGroup(pb.CreateCustomerGroupRequest(
            request_id=f"g{i}", name=name), metadata=SUPER)).group.group_id)
    north, south, west = created
    for request, code, field in [
        (pb.CreateCustomerGroupRequest(request_id="dup", name="north"), grpc.StatusCode.ALREADY_EXISTS, "name"),
        (pb.CreateCustomerGroupRequest(request_id="def", name="默认分组"), grpc.StatusCode.ALREADY_EXISTS, "name"),
        (pb.CreateCustomerGroupRequest(request_id="empty", name="  "), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (pb.CreateCustomerGroupRequest(request_id="long", name="n" * 51), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    ]:
        err = await rpc_error(svc.cls.CreateCustomerGroup(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)
    err = await rpc_error(svc.cls.CreateCustomerGroup(pb.CreateCustomerGroupRequest(request_id="s", name="S"),
                                                      metadata=sales("5")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    renamed = (await svc.cls.RenameCustomerGroup(pb.RenameCustomerGroupRequest(
        request_id="r1", group_id=south, name="Deep South"), metadata=SUPER)).group
    assert renamed.name == "Deep South"
    for request, code, field in [
        (pb.RenameCustomerGroupRequest(request_id="r2", group_id=south, name="NORTH"),
         grpc.StatusCode.ALREADY_EXISTS, "name"),
        (pb.RenameCustomerGroupRequest(request_id="r3", group_id="9999", name="X"), grpc.StatusCode.NOT_FOUND,
         "group_id"),
        (pb.RenameCustomerGroupRequest(request_id="r4", group_id="x", name="X"), grpc.StatusCode.INVALID_ARGUMENT,
         "group_id"),
    ]:
        err = await rpc_error(svc.cls.RenameCustomerGroup(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)

    await svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
        request_id="mv", customer_ids=ids[:2], group_id=west), metadata=SUPER)
    gone = await svc.cls.DeleteCustomerGroup(pb.DeleteCustomerGroupRequest(request_id="d1", group_id=west),
                                             metadata=SUPER)
    assert gone.moved_count == 2
    assert await svc.groups(page_size=1) == [("default", "默认分组", 3), (north, "North", 0),
                                             (south, "Deep South", 0)]
    err = await rpc_error(svc.cls.DeleteCustomerGroup(pb.DeleteCustomerGroupRequest(request_id="d2", group_id=west),
                                                      metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    moves = [(c, d) for c, d, _ in await svc.timeline("attribute_changed") if d["field"] == "group_id"]
    assert [(c, d["from"], d["to"]) for c, d in moves] == [
        (int(ids[0]), "default", west), (int(ids[1]), "default", west),
        (int(ids[0]), west, "default"), (int(ids[1]), west, "default")]
    err = await rpc_error(svc.cls.ListCustomerGroups(pb.ListCustomerGroupsRequest(page_token="%%%"), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_field(err) == "page_token"


async def test_moving_many_customers_is_all_or_nothing(svc):
    member = await svc.member("13800000021")
    biz = [await svc.business_customer(f"Co{i}") for i in range(3)]
    deleted = await svc.business_customer("Deleted")
    await svc.business.DeleteBusinessCustomer(biz_pb.DeleteBusinessCustomerRequest(
        request_id="del", customer_id=deleted), metadata=SUPER)
    vip = (await svc.cls.CreateCustomerGroup(pb.CreateCustomerGroupRequest(request_id="g", name="VIP"),
                                             metadata=SUPER)).group.group_id

    for customer_ids, group_id, code, field in [
        ([member, "424242", biz[0]], vip, grpc.StatusCode.NOT_FOUND, "customer_ids"),
        ([member, deleted], vip, grpc.StatusCode.NOT_FOUND, "customer_ids"),
        ([member], "9999", grpc.StatusCode.NOT_FOUND, "group_id"),
        ([member], "", grpc.StatusCode.INVALID_ARGUMENT, "group_id"),
        ([], vip, grpc.StatusCode.INVALID_ARGUMENT, "customer_ids"),
        (["abc"], vip, grpc.StatusCode.INVALID_ARGUMENT, "customer_ids"),
    ]:
        err = await rpc_error(svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
            request_id=f"bad-{customer_ids}-{group_id}", customer_ids=customer_ids, group_id=group_id),
            metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)
        if customer_ids and customer_ids[1:2] == ["424242"]:
            assert "424242" in err.details()
    assert await svc.groups() == [("default", "默认分组", 4), (vip, "VIP", 0)]

    moved = await svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
        request_id="ok", customer_ids=[member, *biz, member], group_id=vip), metadata=SUPER)
    assert moved.moved_count == 4
    again = await svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
        request_id="ok2", customer_ids=[member, biz[0]], group_id=vip), metadata=SUPER)
    assert again.moved_count == 0
    assert await svc.groups() == [("default", "默认分组", 0), (vip, "VIP", 4)]
    got = await svc.business.GetBusinessCustomer(biz_pb.GetBusinessCustomerRequest(customer_id=biz[1]),
                                                 metadata=SUPER)
    assert got.business_customer.group_id == vip
    home = await svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
        request_id="home", customer_ids=[biz[1]], group_id="default"), metadata=SUPER)
    assert home.moved_count == 1
    assert await svc.groups() == [("default", "默认分组", 1), (vip, "VIP", 3)]


# --- tags


async def test_seven_predefined_tags_and_custom_tags(svc):
    tags = await svc.tags()
    assert [t.name for t in tags] == PREDEFINED and all(t.predefined for t in tags)
    vip = (await svc.cls.CreateTag(pb.CreateTagRequest(request_id="t1", name="  Trade fair 2026 "),
                                   metadata=SUPER)).tag
    assert (vip.name, vip.predefined) == ("Trade fair 2026", False)
    await svc.cls.CreateTag(pb.CreateTagRequest(request_id="t2", name="Exporter"), metadata=SUPER)
    assert [t.name for t in await svc.tags(page_size=3)] == [*PREDEFINED, "Trade fair 2026", "Exporter"]

    for request, code, field in [
        (pb.CreateTagRequest(request_id="d1", name="trade FAIR 2026"), grpc.StatusCode.ALREADY_EXISTS, "name"),
        (pb.CreateTagRequest(request_id="d2", name="战略客户"), grpc.StatusCode.ALREADY_EXISTS, "name"),
        (pb.CreateTagRequest(request_id="d3", name=""), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (pb.CreateTagRequest(request_id="d4", name="t" * 51), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    ]:
        err = await rpc_error(svc.cls.CreateTag(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)
    err = await rpc_error(svc.cls.CreateTag(pb.CreateTagRequest(request_id="s", name="Mine"), metadata=sales("3")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    strategic = next(t for t in tags if t.name == "战略客户")
    for request, code in [(pb.DeleteTagRequest(request_id="x1", tag_id=strategic.tag_id),
                           grpc.StatusCode.FAILED_PRECONDITION),
                          (pb.DeleteTagRequest(request_id="x2", tag_id="4242"), grpc.StatusCode.NOT_FOUND),
                          (pb.DeleteTagRequest(request_id="x3", tag_id="x"), grpc.StatusCode.INVALID_ARGUMENT)]:
        err = await rpc_error(svc.cls.DeleteTag(request, metadata=SUPER))
        assert err.code() == code and violated_field(err) == "tag_id"

    customer = await svc.member("13800000031")
    await svc.cls.TagCustomers(pb.TagCustomersRequest(request_id="tag", customer_ids=[customer],
                                                      tag_ids=[vip.tag_id, strategic.tag_id]), metadata=SUPER)
    deleted = await svc.cls.DeleteTag(pb.DeleteTagRequest(request_id="del", tag_id=vip.tag_id), metadata=SUPER)
    assert deleted.untagged_count == 1
    assert await svc.tags_of(customer) == ["战略客户"]
    assert [t.name for t in await svc.tags()] == [*PREDEFINED, "Exporter"]
    removed = await svc.timeline("tag_removed")
    assert [(c, d) for c, d, _ in removed] == [(int(customer), {"tag": "Trade fair 2026"})]


async def test_tagging_never_duplicates_records_each_change_and_publishes_events(svc, js):
    m = await svc.member("13800000041")
    b = await svc.business_customer("Tagged Co")
    tags = {t.name: t.tag_id for t in await svc.tags()}
    reply = await svc.cls.TagCustomers(pb.TagCustomersRequest(
        request_id="t1", customer_ids=[m, b, m], tag_ids=[tags["重点客户"], tags["新客户"], tags["新客户"]]),
        metadata=SUPER)
    assert reply.added_count == 4
    again = await svc.cls.TagCustomers(pb.TagCustomersRequest(
        request_id="t2", customer_ids=[m, b], tag_ids=[tags["新客户"], tags["普通客户"]]), metadata=SUPER)
    assert again.added_count == 2  # only "普通客户" is new
    assert await svc.pair_count() == 6
    assert await svc.tags_of(m) == ["重点客户", "普通客户", "新客户"]
    assert await svc.tags_of(b, page_size=1) == ["重点客户", "普通客户", "新客户"]
    added = await svc.timeline("tag_added")
    assert len(added) == 6 and {actor for _, _, actor in added} == {"super-1"}
    assert sorted((c, d["tag"]) for c, d, _ in added) == sorted(
        (int(c), t) for c in (m, b) for t in ("重点客户", "新客户", "普通客户"))
    counts = {t.name: t.customer_count for t in await svc.tags()}
    assert counts["重点客户"] == 2 and counts["战略客户"] == 0
    biz = await svc.business.GetBusinessCustomer(biz_pb.GetBusinessCustomerRequest(customer_id=b), metadata=SUPER)
    assert [t.name for t in biz.business_customer.tags] == ["重点客户", "新客户", "普通客户"]

    untag = await svc.cls.UntagCustomers(pb.UntagCustomersRequest(
        request_id="u1", customer_ids=[m, b], tag_ids=[tags["新客户"], tags["战略客户"]]), metadata=SUPER)
    assert untag.removed_count == 2
    untag = await svc.cls.UntagCustomers(pb.UntagCustomersRequest(
        request_id="u2", customer_ids=[m], tag_ids=[tags["新客户"]]), metadata=SUPER)
    assert untag.removed_count == 0
    assert await svc.tags_of(m) == ["重点客户", "普通客户"]
    removed = sorted((c, d["tag"]) for c, d, _ in await svc.timeline("tag_removed"))
    assert removed == [(int(m), "新客户"), (int(b), "新客户")]

    async def published(subject: str, cls, n: int) -> list:
        sub = await js.pull_subscribe(subject, durable=subject.replace(".", "-"), stream="CUSTOMER")
        got = []
        while len(got) < n:
            msgs = await sub.fetch(n - len(got), timeout=5)
            for msg in msgs:
                await msg.ack()
            got += [cls.FromString(msg.data) for msg in msgs]
        return got

    tagged = await published("customer.tag.added.v1", events.CustomerTagged, 6)
    assert sorted((e.customer_id, e.tag_name) for e in tagged) == sorted(
        (c, t) for c in (m, b) for t in ("重点客户", "新客户", "普通客户"))
    assert all(e.operator_id == "super-1" and e.change_time.seconds > 0 and e.tag_id for e in tagged)
    untagged = await published("customer.tag.removed.v1", events.CustomerUntagged, 2)
    assert sorted((e.customer_id, e.tag_id) for e in untagged) == sorted([(m, tags["新客户"]), (b, tags["新客户"])])


async def test_concurrent_taggers_never_make_a_duplicate(svc):
    customer = await svc.member("13800000051")
    tag = (await svc.tags())[0]
    replies = await asyncio.gather(*(svc.cls.TagCustomers(pb.TagCustomersRequest(
        request_id=f"c{i}", customer_ids=[customer], tag_ids=[tag.tag_id]), metadata=SUPER) for i in range(8)))
    assert sum(r.added_count for r in replies) == 1
    assert await svc.pair_count() == 1 and len(await svc.timeline("tag_added")) == 1


async def test_bulk_tagging_with_an_unknown_customer_or_tag_writes_nothing(svc):
    good = [await svc.member(f"1380000006{i}") for i in range(2)]
    gone = await svc.business_customer("Gone")
    await svc.business.DeleteBusinessCustomer(biz_pb.DeleteBusinessCustomerRequest(
        request_id="del", customer_id=gone), metadata=SUPER)
    tag = (await svc.tags())[0].tag_id
    for request, code, field, named in [
        (pb.TagCustomersRequest(request_id="a", customer_ids=[*good, "31337"], tag_ids=[tag]),
         grpc.StatusCode.NOT_FOUND, "customer_ids", "31337"),
        (pb.TagCustomersRequest(request_id="b", customer_ids=[*good, gone], tag_ids=[tag]),
         grpc.StatusCode.NOT_FOUND, "customer_ids", gone),
        (pb.TagCustomersRequest(request_id="c", customer_ids=good, tag_ids=[tag, "777"]),
         grpc.StatusCode.NOT_FOUND, "tag_ids", "777"),
        (pb.TagCustomersRequest(request_id="d", customer_ids=good, tag_ids=[]),
         grpc.StatusCode.INVALID_ARGUMENT, "tag_ids", ""),
        (pb.TagCustomersRequest(request_id="e", customer_ids=good, tag_ids=[str(i) for i in range(1, 22)]),
         grpc.StatusCode.INVALID_ARGUMENT, "tag_ids", ""),
        (pb.TagCustomersRequest(request_id="", customer_ids=good, tag_ids=[tag]),
         grpc.StatusCode.INVALID_ARGUMENT, "request_id", ""),
    ]:
        err = await rpc_error(svc.cls.TagCustomers(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)
        assert named in err.details()
    err = await rpc_error(svc.cls.UntagCustomers(pb.UntagCustomersRequest(
        request_id="u", customer_ids=[good[0], "31337"], tag_ids=[tag]), metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert await svc.pair_count() == 0 and await svc.timeline("tag_added") == []
    assert all(t.customer_count == 0 for t in await svc.tags())
    err = await rpc_error(svc.cls.ListCustomerTags(pb.ListCustomerTagsRequest(customer_id=gone), metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_scopes_sales_their_business_customers_mall_admins_their_malls(svc):
    seller = (await svc.org.CreateStaff(org_pb.CreateStaffRequest(
        request_id="s", name="Seller", role=org_pb.STAFF_ROLE_SALES), metadata=SUPER)).staff.staff_id
    mine = await svc.business_customer("Mine", metadata=sales(seller))
    other = await svc.business_customer("Other")
    mall_a = (await svc.org.CreateMall(org_pb.CreateMallRequest(request_id="ma", name="Mall A"),
                                       metadata=SUPER)).mall.mall_id
    mall_b = (await svc.org.CreateMall(org_pb.CreateMallRequest(request_id="mb", name="Mall B"),
                                       metadata=SUPER)).mall.mall_id
    in_a, in_b = await svc.member("13800000071", mall_a), await svc.member("13800000072", mall_b)
    tag = (await svc.tags())[0].tag_id

    ok = await svc.cls.TagCustomers(pb.TagCustomersRequest(request_id="t1", customer_ids=[mine], tag_ids=[tag]),
                                    metadata=sales(seller))
    assert ok.added_count == 1
    for customer_ids in ([mine, other], [in_a]):
        err = await rpc_error(svc.cls.TagCustomers(pb.TagCustomersRequest(
            request_id=f"t-{customer_ids}", customer_ids=customer_ids, tag_ids=[tag]), metadata=sales(seller)))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and violated_field(err) == "customer_ids"
    err = await rpc_error(svc.cls.TagCustomers(pb.TagCustomersRequest(
        request_id="t3", customer_ids=[in_a, in_b], tag_ids=[tag]), metadata=mall_admin(mall_a)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and in_b in err.details()
    ok = await svc.cls.TagCustomers(pb.TagCustomersRequest(
        request_id="t4", customer_ids=[in_a, other], tag_ids=[tag]), metadata=mall_admin(mall_a))
    assert ok.added_count == 2
    err = await rpc_error(svc.cls.MoveCustomersToGroup(pb.MoveCustomersToGroupRequest(
        request_id="mv", customer_ids=[other], group_id="default"), metadata=sales(seller)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    # Counts are in the caller's scope too.
    assert {t.name: t.customer_count for t in await svc.tags(metadata=sales(seller))}["重点客户"] == 1
    assert {t.name: t.customer_count for t in await svc.tags()}["重点客户"] == 3
    assert await svc.groups(metadata=sales(seller)) == [("default", "默认分组", 1)]
    assert await svc.groups(metadata=mall_admin(mall_a)) == [("default", "默认分组", 3)]
    for call in (svc.cls.ListTags(pb.ListTagsRequest(), metadata=MEMBER),
                 svc.cls.ListCustomerGroups(pb.ListCustomerGroupsRequest(), metadata=MEMBER),
                 svc.cls.TagCustomers(pb.TagCustomersRequest(request_id="m", customer_ids=[in_a], tag_ids=[tag]),
                                      metadata=MEMBER),
                 svc.cls.ListCustomerTags(pb.ListCustomerTagsRequest(customer_id=other), metadata=sales(seller))):
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await svc.pair_count() == 3
