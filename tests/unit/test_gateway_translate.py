"""JSON <-> protobuf translation in the gateway."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as customer_pb
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from gateway.bindings import all_bindings
from gateway.errors import HttpError
from gateway.translate import reference_json, to_json, to_proto


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


def _sample(field: FieldDescriptor, i: int) -> object:
    unsigned = field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
                              FieldDescriptor.TYPE_FIXED64)
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        assert field.enum_type is not None
        return [field.enum_type.values[-1].number, 999][i % 2]  # a named value, then an unknown number
    if field.cpp_type in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return 9_000_000_000_000_000 + i if unsigned or i == 0 else -9_000_000_000_000_000
    if field.cpp_type in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_UINT32):
        return 7 + i if unsigned or i == 0 else -7
    if field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return [1.5, 0.1][i % 2]
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\x00\xffcsv" * (i + 1)
    return f"值 {i} \"quoted\"\n"


def filled(descriptor: Descriptor, variant: int, depth: int = 0) -> Message:
    """A message of ``descriptor`` with every field set (one member of each oneof, chosen by ``variant``)."""
    message = message_factory.GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.FromSeconds(1_700_000_000 + variant)  # type: ignore[attr-defined]  # a Timestamp
        return message
    if descriptor.full_name.startswith("google.protobuf.") or depth > 3:
        return message
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.fields[variant % len(oneof.fields)] is not field:
            continue
        target = getattr(message, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for i in range(2):
                if value_field.message_type is not None:
                    target[_sample(key_field, i)].CopyFrom(filled(value_field.message_type, variant, depth + 1))
                else:
                    target[_sample(key_field, i)] = _sample(value_field, i)
        elif entry is not None:
            if field.is_repeated:
                for i in range(2):
                    target.add().CopyFrom(filled(entry, variant + i, depth + 1))
            else:
                target.CopyFrom(filled(entry, variant, depth + 1))
        elif field.is_repeated:
            target.extend(_sample(field, i) for i in range(2))
        else:
            setattr(message, field.name, _sample(field, variant))
    return message


def _message_types() -> list[Descriptor]:
    found = {}
    for binding in all_bindings():
        for descriptor in (binding.method.input_type, binding.method.output_type):
            found[descriptor.full_name] = descriptor
    return [found[name] for name in sorted(found)]


@pytest.mark.parametrize("descriptor", _message_types(), ids=lambda d: d.full_name)
def test_every_message_prints_as_json_format_prints_it(descriptor):
    """The converter made per type answers what json_format (then int64 as numbers) answers, key order too."""
    for message in (message_factory.GetMessageClass(descriptor)(), filled(descriptor, 0), filled(descriptor, 1)):
        expected = reference_json(message)
        assert json.dumps(to_json(message), ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


@pytest.mark.parametrize("body", [
    {"member_id": "12"}, {"member_id": "会员"}, {"member_id": "\ud800"}, {"member_id": 5}, {"member_id": None},
    {"page_size": "20"}, {"page_size": 20}, {"page_size": "-5"}, {"page_size": "2e1"}, {"page_size": 2.0},
    {"page_size": 2.5}, {"page_size": True}, {"page_size": " 20"}, {"page_size": "99999999999"},
    {"page_size": 99999999999}, {"page_size": "0020"}, {"pageSize": "7"}, {"order_by": "3"},
])
def test_requests_parse_as_json_format_parses_them(body):
    """Texts and integers are set without json_format where it would set them alike; its errors stay its own."""
    request = customer_pb.GetMemberRequest if "member_id" in body else customer_pb.ListMembersRequest
    try:
        expected: object = json_format.ParseDict(body, request())
    except json_format.ParseError as err:
        expected = str(err).split(": ", 1)[-1]
    try:
        got: object = to_proto(body, request())
    except HttpError as err:
        got = err.message.split(": ", 1)[-1]
    assert got == expected
