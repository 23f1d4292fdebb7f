"""Malls, stores and staff over gRPC; store staff phones make members store members."""

from __future__ import annotations

import grpc
import pytest

from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import organization_service_pb2 as pb
from tests.support.customer import SUPER, mall_admin, mask, rpc_error

pytestmark = pytest.mark.database("customer")


async def test_malls_and_stores(customer):
    org = customer.org
    mall = (await org.CreateMall(pb.CreateMallRequest(request_id="m1", name="Mall A"), metadata=SUPER)).mall
    assert mall.timezone == "Asia/Shanghai"
    err = await rpc_error(org.CreateMall(pb.CreateMallRequest(request_id="m2", name="Mall A"), metadata=SUPER))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    err = await rpc_error(org.CreateMall(pb.CreateMallRequest(request_id="m3", name="B", timezone="Mars/Base"),
                                         metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("timezone:")
    err = await rpc_error(org.CreateMall(pb.CreateMallRequest(request_id="m4", name="C"), metadata=mall_admin("1")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    food = (await org.CreateStore(pb.CreateStoreRequest(
        request_id="s1", mall_id=mall.mall_id, name="Noodles", category="food and beverage", business_format="noodle",
        floor="B1", tags=["flagship", "new", "new"]), metadata=SUPER)).store
    assert list(food.tags) == ["flagship", "new"]
    await org.CreateStore(pb.CreateStoreRequest(request_id="s2", mall_id=mall.mall_id, name="Shoes",
                                                category="retail", floor="2F"), metadata=SUPER)
    err = await rpc_error(org.CreateStore(pb.CreateStoreRequest(request_id="s3", mall_id="999", name="X"),
                                          metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    listed = await org.ListStores(pb.ListStoresRequest(mall_id=mall.mall_id, category="food and beverage"))
    assert [s.name for s in listed.stores] == ["Noodles"]
    tagged = await org.ListStores(pb.ListStoresRequest(tag="flagship"))
    assert [s.name for s in tagged.stores] == ["Noodles"]
    updated = await org.UpdateStore(pb.UpdateStoreRequest(
        request_id="u1", store=pb.Store(store_id=food.store_id, floor="1F"), update_mask=mask("floor")),
        metadata=SUPER)
    assert updated.store.floor == "1F" and updated.store.name == "Noodles"
    err = await rpc_error(org.UpdateStore(pb.UpdateStoreRequest(
        request_id="u2", store=pb.Store(store_id=food.store_id), update_mask=mask("mall_id")), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("update_mask:")
    page1 = await org.ListStores(pb.ListStoresRequest(page_size=1))
    page2 = await org.ListStores(pb.ListStoresRequest(page_size=1, page_token=page1.next_page_token))
    assert [s.name for s in [*page1.stores, *page2.stores]] == ["Noodles", "Shoes"] and not page2.next_page_token


async def test_staff_roles_scopes_and_store_members(customer):
    org, members = customer.org, customer.members
    mall_id = await customer.mall("Mall A")
    store = (await org.CreateStore(pb.CreateStoreRequest(request_id="store-s", mall_id=mall_id, name="Tea"),
                                   metadata=SUPER)).store
    member = (await members.CreateMember(member_pb.CreateMemberRequest(request_id="member-c", phone="13900000001"),
                                         metadata=SUPER)).member
    assert not member.store_member

    err = await rpc_error(org.CreateStaff(pb.CreateStaffRequest(request_id="a", name="Ann",
                                                                role=pb.STAFF_ROLE_MALL_ADMIN), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("mall_ids:")
    admin = (await org.CreateStaff(pb.CreateStaffRequest(request_id="b", name="Ann", role=pb.STAFF_ROLE_MALL_ADMIN,
                                                         mall_ids=[mall_id]), metadata=SUPER)).staff
    assert list(admin.mall_ids) == [mall_id]
    clerk = (await org.CreateStaff(pb.CreateStaffRequest(
        request_id="c", name="Bo", phone="13900000001", role=pb.STAFF_ROLE_STORE_STAFF, store_id=store.store_id),
        metadata=SUPER)).staff
    assert (await members.GetMember(member_pb.GetMemberRequest(member_id=member.member_id))).member.store_member
    later = (await members.CreateMember(member_pb.CreateMemberRequest(request_id="member-d", phone="13900000002"),
                                        metadata=SUPER)).member
    assert not later.store_member

    await org.UpdateStaff(pb.UpdateStaffRequest(request_id="e", staff=pb.Staff(staff_id=clerk.staff_id, disabled=True),
                                                update_mask=mask("disabled")), metadata=SUPER)
    assert not (await members.GetMember(member_pb.GetMemberRequest(member_id=member.member_id))).member.store_member
    err = await rpc_error(org.CreateStaff(pb.CreateStaffRequest(request_id="f", name="X", phone="13900000001",
                                                                role=pb.STAFF_ROLE_SALES), metadata=SUPER))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    err = await rpc_error(org.CreateStaff(pb.CreateStaffRequest(request_id="g", name="X", role=7), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("role:")
    admins = await org.ListStaff(pb.ListStaffRequest(role=pb.STAFF_ROLE_MALL_ADMIN))
    assert [s.name for s in admins.staff] == ["Ann"]
    by_mall = await org.ListStaff(pb.ListStaffRequest(mall_id=mall_id))
    assert [s.staff_id for s in by_mall.staff] == [admin.staff_id]
