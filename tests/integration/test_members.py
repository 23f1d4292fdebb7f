"""The customer service over gRPC, in-process, on real NATS and a real database."""

from __future__ import annotations

import grpc
import pytest

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2_grpc as pb_grpc
from services.customer.config import CustomerSettings
from services.customer.service import build_spec
from tests.support.customer import violated_field
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("customer")


@pytest.fixture
async def customer(database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        yield pb_grpc.MemberServiceStub(channel), rt


async def test_create_then_get_member(customer):
    stub, _ = customer
    created = await stub.CreateMember(pb.CreateMemberRequest(
        request_id="r1", phone="13800000001", email="Ada@Example.com", name="Ada", gender=member_pb2.GENDER_FEMALE))
    m = created.member
    assert m.member_id and m.phone == "13800000001" and m.email == "ada@example.com"
    assert m.gender == member_pb2.GENDER_FEMALE and m.create_time.seconds > 0
    got = await stub.GetMember(pb.GetMemberRequest(member_id=m.member_id))
    assert got.member == m


async def test_create_member_emits_member_created_event(customer, js):
    stub, _ = customer
    created = await stub.CreateMember(pb.CreateMemberRequest(request_id="r1", phone="13800000002"))
    sub = await js.pull_subscribe("customer.member.created.v1", durable="t", stream="CUSTOMER")
    msgs = await sub.fetch(1, timeout=5)
    from crowdpack.events.v1 import customer_events_pb2

    event = customer_events_pb2.MemberCreated.FromString(msgs[0].data)
    assert event.member_id == created.member.member_id and event.phone == "13800000002"


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"phone": "12345"}, "phone"),
    ({"phone": "23800000000"}, "phone"),
    ({"email": "not-an-email"}, "email"),
    ({}, "phone"),
    ({"phone": "13800000003", "gender": 99}, "gender"),
    ({"phone": "13800000003", "name": "x" * 101}, "name"),
])
async def test_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(customer, request_fields, field):
    stub, _ = customer
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateMember(pb.CreateMemberRequest(request_id="bad", **request_fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(f"{field}:")
    assert violated_field(info.value) == field
    listed = await stub.ListMembers(pb.ListMembersRequest())
    assert list(listed.members) == []


async def test_missing_request_id_is_invalid_argument(customer):
    stub, _ = customer
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateMember(pb.CreateMemberRequest(phone="13800000004"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_field(info.value) == "request_id"


async def test_duplicate_phone_or_email_is_already_exists(customer):
    stub, _ = customer
    await stub.CreateMember(pb.CreateMemberRequest(request_id="a", phone="13800000005", email="a@b.cn"))
    for req, field in [(pb.CreateMemberRequest(request_id="b", phone="13800000005"), "phone"),
                       (pb.CreateMemberRequest(request_id="c", email="A@B.CN"), "email")]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateMember(req)
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert violated_field(info.value) == field


async def test_request_id_replays_the_same_result_and_rejects_a_different_body(customer):
    stub, _ = customer
    first = await stub.CreateMember(pb.CreateMemberRequest(request_id="same", phone="13800000006"))
    again = await stub.CreateMember(pb.CreateMemberRequest(request_id="same", phone="13800000006"))
    assert again == first
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateMember(pb.CreateMemberRequest(request_id="same", phone="13800000007"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await stub.ListMembers(pb.ListMembersRequest())
    assert [m.member_id for m in listed.members] == [first.member.member_id]


async def test_get_unknown_member_is_not_found(customer):
    stub, _ = customer
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetMember(pb.GetMemberRequest(member_id="999"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetMember(pb.GetMemberRequest(member_id="abc"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_pages_newest_first_to_the_end(customer):
    stub, _ = customer
    ids = []
    for i in range(7):
        r = await stub.CreateMember(pb.CreateMemberRequest(request_id=f"p{i}", phone=f"1390000000{i}"))
        ids.append(r.member.member_id)
    seen, token = [], ""
    while True:
        page = await stub.ListMembers(pb.ListMembersRequest(page_size=3, page_token=token))
        assert len(page.members) <= 3
        seen += [m.member_id for m in page.members]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    for bad in (pb.ListMembersRequest(page_size=-1), pb.ListMembersRequest(page_token="!!")):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListMembers(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
