"""Every API error carries a google.rpc.ErrorInfo with a stable reason (services/common/errors.py), over gRPC."""

from __future__ import annotations

import grpc
import pytest

from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2 as lpb
from services.common.auth import Caller, Role
from tests.support.customer import SUPER, error_reason, mall_admin, rpc_error
from tests.support.identity import signed

DOMAIN = "crowdpack.io"


@pytest.mark.database("customer")
async def test_representative_customer_errors_carry_their_reason(customer):
    members = customer.members
    home, other = await customer.mall("Home"), await customer.mall("Other")
    created = (await members.CreateMember(pb.CreateMemberRequest(
        request_id="a", phone="13600000001", registration_mall_id=home), metadata=SUPER)).member

    bad = await rpc_error(members.CreateMember(pb.CreateMemberRequest(request_id="b", phone="1"), metadata=SUPER))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(bad) == ("FIELD_INVALID", DOMAIN, {"field": "phone"})

    taken = await rpc_error(members.CreateMember(pb.CreateMemberRequest(request_id="c", phone="13600000001"),
                                                 metadata=SUPER))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(taken) == ("PHONE_TAKEN", DOMAIN, {"field": "phone"})

    reused = await rpc_error(members.CreateMember(pb.CreateMemberRequest(request_id="a", phone="13600000002"),
                                                  metadata=SUPER))
    assert error_reason(reused) == ("REQUEST_ID_REUSED", DOMAIN, {"field": "request_id"})

    outside = await rpc_error(members.GetMember(pb.GetMemberRequest(member_id=created.member_id),
                                                metadata=mall_admin(other)))
    assert outside.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(outside) == ("MEMBER_OUTSIDE_SCOPE", DOMAIN, {})

    missing = await rpc_error(members.GetMember(pb.GetMemberRequest(member_id="999999"), metadata=SUPER))
    assert missing.code() == grpc.StatusCode.NOT_FOUND and error_reason(missing)[0] == "NOT_FOUND"

    forged = (("authorization", "Bearer not.a.jwt"),)
    anonymous = await rpc_error(members.GetMember(pb.GetMemberRequest(member_id=created.member_id), metadata=forged))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(anonymous) == ("IDENTITY_INVALID", DOMAIN, {})


@pytest.mark.database("ledger")
async def test_representative_ledger_errors_carry_their_reason(ledger):
    admin = signed(Caller(staff_id="li", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))
    boss = signed(Caller(staff_id="boss", role=Role.SUPER_ADMIN))
    sales = signed(Caller(staff_id="s", role=Role.SALES))
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")
    template = (await ledger.stub.CreateReasonTemplate(lpb.CreateReasonTemplateRequest(
        request_id="t", asset=lpb.ASSET_POINTS, name="补录"), metadata=boss)).reason_template

    def adjust(request_id: str, value: int, direction: int, **kw) -> lpb.AdjustBalanceRequest:
        return lpb.AdjustBalanceRequest(request_id=request_id, member_id="1", asset=lpb.ASSET_POINTS,
                                        direction=direction, value=value,
                                        reason_template_id=template.reason_template_id, **kw)

    short = await rpc_error(ledger.stub.AdjustBalance(adjust("down", 5, lpb.DIRECTION_DECREASE), metadata=admin))
    assert short.code() == grpc.StatusCode.FAILED_PRECONDITION
    reason, domain, metadata = error_reason(short)
    assert (reason, domain, metadata["field"]) == ("INSUFFICIENT_BALANCE", DOMAIN, "value") and metadata["asset"]
    elsewhere = await rpc_error(ledger.stub.AdjustBalance(adjust("x", 5, lpb.DIRECTION_INCREASE, mall_id="200"),
                                                          metadata=admin))
    assert elsewhere.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(elsewhere) == ("MALL_NOT_MANAGED", DOMAIN, {"field": "mall_id"})
    role = await rpc_error(ledger.stub.AdjustBalance(adjust("y", 5, lpb.DIRECTION_INCREASE), metadata=sales))
    assert error_reason(role) == ("ROLE_NOT_ALLOWED", DOMAIN, {"field": "role"})
