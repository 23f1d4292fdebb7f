"""A deleted customer's phone and email: kept with its data, never blocking a new person without saying why.

The decision (docs/deleted-customers.md): a deleted customer keeps its data, so its phone and email
stay taken; registering them again is FAILED_PRECONDITION ``PHONE_HELD_BY_DELETED_CUSTOMER`` naming
the deleted customer and ReleaseDeletedContacts, by which a super admin frees them.
"""

from __future__ import annotations

import json

import grpc
import pytest
from sqlalchemy import select

from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as pb
from services.customer.models import Customer
from tests.support.customer import SUPER, error_reason, mall_admin, rpc_error

pytestmark = pytest.mark.database("customer")
PHONE, EMAIL = "13600000021", "gone@example.com"


async def deleted_member(customer) -> str:
    mall = await customer.mall("Home")
    old = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="old", phone=PHONE, email=EMAIL, name="老会员", registration_mall_id=mall),
        metadata=SUPER)).member
    await customer.members.DeleteMember(pb.DeleteMemberRequest(request_id="del", member_id=old.member_id),
                                        metadata=SUPER)
    return old.member_id


async def test_a_deleted_members_phone_is_refused_saying_why_and_what_an_admin_can_do(customer):
    old = await deleted_member(customer)
    err = await rpc_error(customer.members.CreateMember(pb.CreateMemberRequest(request_id="new", phone=PHONE),
                                                        metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err) == ("PHONE_HELD_BY_DELETED_CUSTOMER", "crowdpack.io",
                                 {"field": "phone", "customer_id": old})
    assert f"deleted customer {old}" in err.details() and "ReleaseDeletedContacts" in err.details()
    by_email = await rpc_error(customer.members.CreateMember(pb.CreateMemberRequest(request_id="e", email=EMAIL),
                                                             metadata=SUPER))
    assert error_reason(by_email)[0] == "EMAIL_HELD_BY_DELETED_CUSTOMER"
    other = (await customer.members.CreateMember(pb.CreateMemberRequest(request_id="o", phone="13600000022"),
                                                 metadata=SUPER)).member
    moved = await rpc_error(customer.members.UpdateMember(pb.UpdateMemberRequest(
        request_id="u", member_id=other.member_id, member=m.Member(phone=PHONE), update_mask={"paths": ["phone"]}),
        metadata=SUPER))
    assert error_reason(moved)[:1] == ("PHONE_HELD_BY_DELETED_CUSTOMER",) and "member.phone" in moved.details()


async def test_a_super_admin_releases_the_contacts_and_the_deleted_record_keeps_the_rest(customer):
    old = await deleted_member(customer)
    live = (await customer.members.CreateMember(pb.CreateMemberRequest(request_id="live", phone="13600000023"),
                                                metadata=SUPER)).member
    release = pb.ReleaseDeletedContactsRequest(request_id="rel", member_id=old)
    admin = await rpc_error(customer.members.ReleaseDeletedContacts(release, metadata=mall_admin("1")))
    assert (admin.code(), error_reason(admin)[0]) == (grpc.StatusCode.PERMISSION_DENIED, "SUPER_ADMIN_ONLY")
    not_deleted = await rpc_error(customer.members.ReleaseDeletedContacts(pb.ReleaseDeletedContactsRequest(
        request_id="rel-live", member_id=live.member_id), metadata=SUPER))
    assert (not_deleted.code(), error_reason(not_deleted)[0]) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                  "CUSTOMER_NOT_DELETED")

    freed = await customer.members.ReleaseDeletedContacts(release, metadata=SUPER)
    assert (freed.released_phone, freed.released_email) == (PHONE, EMAIL)
    assert await customer.members.ReleaseDeletedContacts(release, metadata=SUPER) == freed  # a repeat
    new = (await customer.members.CreateMember(pb.CreateMemberRequest(request_id="new", phone=PHONE, email=EMAIL),
                                               metadata=SUPER)).member
    assert new.member_id != old and new.phone == PHONE

    async with customer.db.read() as session:
        kept = await session.scalar(select(Customer).where(Customer.id == int(old)))
    assert (kept.name, kept.phone, kept.email) == ("老会员", None, None) and kept.deleted_at is not None
    entries = (await customer.members.ListTimeline(pb.ListTimelineRequest(customer_id=old), metadata=SUPER)).entries
    released = [json.loads(e.detail_json) for e in entries if e.kind == "contacts_released"]
    assert released == [{"phone": PHONE, "email": EMAIL}]
    assert [e.actor_id for e in entries if e.kind == "contacts_released"] == ["super-1"]


async def test_a_business_customer_meets_the_same_rule_for_a_deleted_members_phone(customer):
    from crowdpack.customer.v1 import business_customer_service_pb2 as bpb
    from crowdpack.customer.v1 import business_customer_service_pb2_grpc as bpb_grpc

    old = await deleted_member(customer)
    business = bpb_grpc.BusinessCustomerServiceStub(customer.channel)
    err = await rpc_error(business.CreateBusinessCustomer(bpb.CreateBusinessCustomerRequest(
        request_id="b", name="华东贸易有限公司", phone=PHONE), metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(err) == ("PHONE_HELD_BY_DELETED_CUSTOMER", "crowdpack.io",
                                 {"field": "phone", "customer_id": old})
    live = (await customer.members.CreateMember(pb.CreateMemberRequest(request_id="l", phone="13600000029"),
                                                metadata=SUPER)).member
    taken = await rpc_error(business.CreateBusinessCustomer(bpb.CreateBusinessCustomerRequest(
        request_id="t", name="华南贸易有限公司", phone=live.phone), metadata=SUPER))
    assert (taken.code(), error_reason(taken)[0]) == (grpc.StatusCode.ALREADY_EXISTS, "PHONE_TAKEN")
