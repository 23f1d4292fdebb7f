"""Names and labels with control characters (NUL, escape, line breaks) are refused, naming the field."""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from tests.support.customer import SUPER, rpc_error, violated_field


async def test_names_with_control_characters_are_refused_naming_the_field(customer):
    for i, (field, value) in enumerate([("name", "Li\x00Lei"), ("real_name", "王\x1b[31m五"), ("name", "a\nb"),
                                        ("real_name", "tab\there"), ("name", "del\x7f")]):
        err = await rpc_error(customer.members.CreateMember(pb.CreateMemberRequest(
            request_id=f"c{i}", phone=f"1390000200{i}", **{field: value}), metadata=SUPER))
        assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, field), value
    listed = await customer.members.ListMembers(pb.ListMembersRequest(), metadata=SUPER)
    assert list(listed.members) == []  # nothing written
    made = await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="ok", phone="13900002009", name="李雷 Li Lei"), metadata=SUPER)
    assert made.member.name == "李雷 Li Lei"
    err = await rpc_error(customer.org.CreateMall(org_pb.CreateMallRequest(request_id="m", name="万象\x00城"),
                                                  metadata=SUPER))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "name")
