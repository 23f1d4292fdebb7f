"""JSON <-> protobuf translation in the gateway."""

from __future__ import annotations

import pytest

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as customer_pb
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from gateway.errors import HttpError
from gateway.translate import to_json, to_proto


def test_int64_money_is_a_json_number_in_nested_and_repeated_messages():
    reply = ledger_pb.GetBalancesResponse(accounts=[
        ledger_pb.Account(account_id="1", balance=9_000_000_000_000_000, asset=ledger_pb.ASSET_BALANCE),
        ledger_pb.Account(account_id="2", balance=0)])
    data = to_json(reply)
    assert [a["balance"] for a in data["accounts"]] == [9_000_000_000_000_000, 0]
    assert data["accounts"][0]["asset"] == "ASSET_BALANCE"


def test_empty_lists_and_defaults_are_present():
    assert to_json(customer_pb.ListMembersResponse()) == {"members": [], "next_page_token": "", "total_size": 0}


def test_enum_by_name_and_camel_case_names_are_accepted():
    msg = to_proto({"phone": "13800000000", "gender": "GENDER_FEMALE", "requestId": "r"},
                   customer_pb.CreateMemberRequest())
    assert msg.gender == member_pb2.GENDER_FEMALE and msg.request_id == "r"


@pytest.mark.parametrize(("body", "field"), [
    ({"nope": 1}, "nope"),
    ({"gender": "PURPLE"}, "gender"),
    ({"phone": ["x"]}, "phone"),
    ({"requestId": 5}, "request_id"),
])
def test_bad_fields_are_named(body, field):
    with pytest.raises(HttpError) as info:
        to_proto(body, customer_pb.CreateMemberRequest())
    assert info.value.status == 400 and info.value.field == field
    assert info.value.message.startswith(f"{field}:")
