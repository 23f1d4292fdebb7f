"""A member's life: profile edits, card, disable, review, settings, eligibility, soft delete, timeline."""

from __future__ import annotations

import json

import grpc
import pytest

from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import settings_service_pb2 as settings_pb
from crowdpack.events.v1 import customer_events_pb2 as events
from services.customer.members.cards import is_valid
from tests.support.customer import SUPER, mall_admin, mask, rpc_error

pytestmark = pytest.mark.database("customer")


async def fetch_all(js, subject: str, count: int) -> list:
    """Pulls ``count`` messages of a subject (fetch may return fewer than asked, so it loops)."""
    sub = await js.pull_subscribe(subject, durable="t", stream="CUSTOMER")
    got: list = []
    for _ in range(50):
        if len(got) >= count:
            break
        try:
            got += await sub.fetch(count - len(got), timeout=0.5)
        except TimeoutError:
            pass
    return got


async def create(stub, rid: str, **fields) -> m.Member:
    return (await stub.CreateMember(pb.CreateMemberRequest(request_id=rid, **fields), metadata=SUPER)).member


async def test_full_profile_and_partial_update_with_timeline(customer):
    stub = customer.members
    mall = await customer.mall("A")
    member = await create(stub, "c1", phone="13700000001", name="Wang", real_name="王小明", gender=m.GENDER_MALE,
                          birthday="1990-02-28", avatar_url="https://img.example/a.png", wechat_openid="oAbC",
                          registration_mall_id=mall)
    assert member.birthday == "1990-02-28" and member.wechat_openid == "oAbC" and member.registration_mall_id == mall
    assert member.review_status == m.REVIEW_STATUS_APPROVED and member.kind == m.CUSTOMER_KIND_MEMBER
    updated = (await stub.UpdateMember(pb.UpdateMemberRequest(
        request_id="u1", member_id=member.member_id, member=m.Member(real_name="王明", email="W@x.cn", name="ignored"),
        update_mask=mask("real_name", "email")), metadata=SUPER)).member
    assert updated.real_name == "王明" and updated.email == "w@x.cn" and updated.name == "Wang"
    for fields, field in [({"birthday": "2990-01-01"}, "member.birthday"),
                          ({"avatar_url": "ftp://x"}, "member.avatar_url"),
                          ({"phone": "123"}, "member.phone")]:
        path = field.split(".")[1]
        err = await rpc_error(stub.UpdateMember(pb.UpdateMemberRequest(
            request_id=f"bad-{path}", member_id=member.member_id, member=m.Member(**fields), update_mask=mask(path)),
            metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(field), err.details()
    err = await rpc_error(stub.UpdateMember(pb.UpdateMemberRequest(
        request_id="u3", member_id=member.member_id, member=m.Member(), update_mask=mask("phone", "email")),
        metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # a member keeps a phone or an email
    timeline = (await stub.ListTimeline(pb.ListTimelineRequest(customer_id=member.member_id))).entries
    assert [e.kind for e in timeline] == ["attribute_changed", "attribute_changed", "created"]
    changed = {json.loads(e.detail_json)["field"]: json.loads(e.detail_json) for e in timeline[:2]}
    assert changed["real_name"]["from"] == "王小明" and changed["real_name"]["to"] == "王明"
    assert all(e.actor_id == "super-1" for e in timeline)


async def test_open_card_generates_a_unique_checked_number_and_relates_the_mall(customer, js):
    stub = customer.members
    home, other = await customer.mall("Home"), await customer.mall("Other")
    a = await create(stub, "c1", phone="13700000001", registration_mall_id=home)
    b = await create(stub, "c2", phone="13700000002")
    card_a = (await stub.OpenCard(pb.OpenCardRequest(request_id="o1", member_id=a.member_id, mall_id=other,
                                                     channel=m.OPEN_CHANNEL_WECHAT), metadata=SUPER)).member
    card_b = (await stub.OpenCard(pb.OpenCardRequest(request_id="o2", member_id=b.member_id, mall_id=home,
                                                     channel=m.OPEN_CHANNEL_ALIPAY), metadata=SUPER)).member
    assert card_a.card.opened and is_valid(card_a.card.card_number)
    assert card_a.card.card_number != card_b.card.card_number
    assert list(card_a.interaction_mall_ids) == [other]       # bound a card in another mall
    assert card_b.registration_mall_id == home and list(card_b.interaction_mall_ids) == []
    err = await rpc_error(stub.OpenCard(pb.OpenCardRequest(request_id="o3", member_id=a.member_id, mall_id=home,
                                                           channel=m.OPEN_CHANNEL_WECHAT), metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = await rpc_error(stub.OpenCard(pb.OpenCardRequest(request_id="o4", member_id=b.member_id, mall_id=home,
                                                           channel=9), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("channel:")
    found = await stub.ListMembers(pb.ListMembersRequest(filter=pb.MemberFilter(search=card_a.card.card_number)))
    assert [x.member_id for x in found.members] == [a.member_id]
    opened = [events.MemberCardOpened.FromString(x.data)
              for x in await fetch_all(js, "customer.member.card_opened.v1", 2)]
    assert {e.card_number for e in opened} == {card_a.card.card_number, card_b.card.card_number}


async def test_disable_review_and_order_eligibility(customer, js):
    stub = customer.members
    member = await create(stub, "c1", phone="13700000001")
    check = lambda: stub.CheckOrderEligibility(pb.CheckOrderEligibilityRequest(member_id=member.member_id))  # noqa: E731 - a call repeated below
    assert (await check()).eligible
    await stub.SetMemberDisabled(pb.SetMemberDisabledRequest(request_id="d1", member_id=member.member_id,
                                                             disabled=True, reason="fraud"), metadata=SUPER)
    answer = await check()
    assert not answer.eligible and answer.reason == pb.INELIGIBLE_REASON_DISABLED
    await stub.SetMemberDisabled(pb.SetMemberDisabledRequest(request_id="d2", member_id=member.member_id,
                                                             disabled=False), metadata=SUPER)
    await stub.ReviewMember(pb.ReviewMemberRequest(request_id="r1", member_id=member.member_id,
                                                   review_status=m.REVIEW_STATUS_REJECTED), metadata=SUPER)
    assert (await check()).reason == pb.INELIGIBLE_REASON_REVIEW_REJECTED
    changes = [events.MemberStatusChanged.FromString(x.data)
               for x in await fetch_all(js, "customer.member.status_changed.v1", 3)]
    assert [(c.disabled, c.review_status) for c in changes] == [
        (True, "approved"), (False, "approved"), (False, "rejected")]

    # The tenant requires review and forbids base-level orders.
    await customer.settings.UpdateTenantSettings(settings_pb.UpdateTenantSettingsRequest(
        request_id="s1", settings=settings_pb.TenantSettings(review_required=True, base_level_may_order=False),
        update_mask=mask("review_required", "base_level_may_order")), metadata=SUPER)
    fresh = await create(stub, "c2", phone="13700000002")
    assert fresh.review_status == m.REVIEW_STATUS_PENDING
    answer = await stub.CheckOrderEligibility(pb.CheckOrderEligibilityRequest(member_id=fresh.member_id))
    assert answer.reason == pb.INELIGIBLE_REASON_REVIEW_PENDING
    await stub.ReviewMember(pb.ReviewMemberRequest(request_id="r2", member_id=fresh.member_id,
                                                   review_status=m.REVIEW_STATUS_APPROVED), metadata=SUPER)
    answer = await stub.CheckOrderEligibility(pb.CheckOrderEligibilityRequest(member_id=fresh.member_id))
    assert answer.reason == pb.INELIGIBLE_REASON_BASE_LEVEL and answer.message
    got = await customer.settings.GetTenantSettings(settings_pb.GetTenantSettingsRequest())
    assert got.settings.review_required and not got.settings.base_level_may_order and got.settings.show_level
    err = await rpc_error(customer.settings.UpdateTenantSettings(settings_pb.UpdateTenantSettingsRequest(
        request_id="s2", settings=settings_pb.TenantSettings(show_level=False), update_mask=mask("show_level")),
        metadata=mall_admin("1")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_soft_delete_keeps_the_row_and_the_timeline_but_the_member_is_gone(customer):
    stub = customer.members
    member = await create(stub, "c1", phone="13700000001")
    deleted = (await stub.DeleteMember(pb.DeleteMemberRequest(request_id="x", member_id=member.member_id),
                                       metadata=SUPER)).member
    assert deleted.member_id == member.member_id
    err = await rpc_error(stub.GetMember(pb.GetMemberRequest(member_id=member.member_id)))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (await stub.CheckOrderEligibility(pb.CheckOrderEligibilityRequest(
        member_id=member.member_id))).reason == pb.INELIGIBLE_REASON_DELETED
    listed = await stub.ListMembers(pb.ListMembersRequest())
    assert list(listed.members) == []
    kinds = [e.kind for e in (await stub.ListTimeline(pb.ListTimelineRequest(customer_id=member.member_id))).entries]
    assert kinds == ["deleted", "created"]
    # The phone stays taken by the kept row, saying so (docs/deleted-customers.md): deletion cannot be undone
    # by re-creating.
    err = await rpc_error(stub.CreateMember(pb.CreateMemberRequest(request_id="again", phone="13700000001"),
                                            metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "deleted customer" in err.details()
    err = await rpc_error(stub.DeleteMember(pb.DeleteMemberRequest(request_id="y", member_id=member.member_id),
                                            metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_mall_admin_sees_only_members_of_their_malls(customer):
    stub = customer.members
    a, b = await customer.mall("A"), await customer.mall("B")
    in_a = await create(stub, "c1", phone="13700000001", registration_mall_id=a)
    in_b = await create(stub, "c2", phone="13700000002", registration_mall_id=b)
    visitor = await create(stub, "c3", phone="13700000003", registration_mall_id=b)
    await stub.OpenCard(pb.OpenCardRequest(request_id="o", member_id=visitor.member_id, mall_id=a,
                                           channel=m.OPEN_CHANNEL_WECHAT), metadata=SUPER)
    seen = await stub.ListMembers(pb.ListMembersRequest(include_total=True), metadata=mall_admin(a))
    assert {x.member_id for x in seen.members} == {in_a.member_id, visitor.member_id} and seen.total_size == 2
    err = await rpc_error(stub.GetMember(pb.GetMemberRequest(member_id=in_b.member_id), metadata=mall_admin(a)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    # A member of another mall who interacted with this one (opened a card here) is seen, with that mall.
    seen_visitor = (await stub.GetMember(pb.GetMemberRequest(member_id=visitor.member_id),
                                         metadata=mall_admin(a))).member
    assert seen_visitor.member_id == visitor.member_id and str(a) in seen_visitor.interaction_mall_ids
    err = await rpc_error(stub.SetMemberDisabled(pb.SetMemberDisabledRequest(
        request_id="d", member_id=in_b.member_id, disabled=True), metadata=mall_admin(a)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not (await stub.GetMember(pb.GetMemberRequest(member_id=in_b.member_id))).member.disabled
    stats = (await stub.GetMemberStatistics(pb.GetMemberStatisticsRequest(), metadata=mall_admin(a))).statistics
    assert stats.total == 2 and stats.card_opened == 1
