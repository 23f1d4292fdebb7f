"""JSON <-> protobuf translation, field names as in the protos (snake_case).

int64 values travel as JSON numbers: money is bounded by ±9·10^15 fen, inside the range
a JavaScript number holds exactly.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gateway.errors import HttpError

M = TypeVar("M", bound=Message)
INT64_TYPES = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
               FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def to_proto(body: dict[str, Any], message: M) -> M:
    """Parses ``body`` into ``message``; an unknown field or a wrong type is a 400 naming it."""
    for key, value in body.items():
        descriptor = message.DESCRIPTOR.fields_by_name.get(key) or next(
            (f for f in message.DESCRIPTOR.fields if f.json_name == key), None)
        if descriptor is None:
            raise HttpError(400, "INVALID_ARGUMENT", f"{key}: unknown field", field=key)
        try:
            json_format.ParseDict({key: value}, message, ignore_unknown_fields=False)
        except json_format.ParseError as err:
            raise HttpError(400, "INVALID_ARGUMENT", f"{descriptor.name}: {_reason(err)}",
                            field=descriptor.name) from None
    return message


def _reason(err: json_format.ParseError) -> str:
    text = str(err)
    return text.split(": ", 1)[-1] if ": " in text else text


def to_json(message: Message) -> dict[str, Any]:
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return _int64_as_numbers(message, data)


def _int64_as_numbers(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    for field in message.DESCRIPTOR.fields:
        if field.name not in data:
            continue
        if field.type in INT64_TYPES:
            value = data[field.name]
            data[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None \
                and not field.message_type.GetOptions().map_entry \
                and field.message_type.full_name.split(".")[0] != "google":
            value = getattr(message, field.name)
            if field.is_repeated:
                data[field.name] = [_int64_as_numbers(m, d) for m, d in zip(value, data[field.name], strict=True)]
            else:
                data[field.name] = _int64_as_numbers(value, data[field.name])
    return data
