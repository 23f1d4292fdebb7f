"""JSON <-> protobuf translation, field names as in the protos (snake_case).

int64 values travel as JSON numbers: money is bounded by ±9·10^15 fen, inside the range
a JavaScript number holds exactly.

Replies are printed as protobuf's JSON mapping prints them (``json_format.MessageToDict`` with the proto
field names and every field without presence), int64 then made numbers. ``to_json`` gets there by a
converter made once per message type from its descriptor: a page of twenty members is printed in two
fifths of the time ``json_format`` takes, which inspects every field's descriptor on every call. A type
with what the converter leaves to ``json_format`` (maps, floating point, extensions, closed enums, enum
values with JSON names of their own) is printed by ``json_format`` itself, as are the well-known types
inside a message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any, TypeVar, cast

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

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
        if _set_plainly(message, cast(FieldDescriptor, descriptor), value):
            continue
        try:
            json_format.ParseDict({key: value}, message, ignore_unknown_fields=False)
        except json_format.ParseError as err:
            raise HttpError(400, "INVALID_ARGUMENT", f"{descriptor.name}: {_reason(err)}",
                            field=descriptor.name) from None
    return message


_INTEGER_TYPES = INT64_TYPES | {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT32,
                                FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}
_DIGITS = re.compile(r"-?[0-9]{1,19}")


def _set_plainly(message: Message, field: FieldDescriptor, value: Any) -> bool:
    """Sets the commonest values as ``json_format`` would, without it (a path's id, a query's page size: a
    ``ParseDict`` costs some 30 us): an ASCII text into a string field, a decimal integer (a number or its
    text) into an integer field that holds it. False, having set nothing, for anything else: ``json_format``
    then parses it, or names what is wrong."""
    if field.is_repeated:
        return False
    if field.type == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str) and value.isascii():
            setattr(message, field.name, value)
            return True
        return False
    if field.type in _INTEGER_TYPES and (type(value) is int or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        try:
            setattr(message, field.name, int(value))
        except ValueError:  # out of the field's range: json_format says so
            return False
        return True
    return False


def _reason(err: json_format.ParseError) -> str:
    text = str(err)
    return text.split(": ", 1)[-1] if ": " in text else text


def to_json(message: Message) -> dict[str, Any]:
    """``message`` as a JSON object: protobuf's JSON mapping with the proto field names, every field without
    presence printed, int64 values as numbers."""
    # protobuf's stubs type DESCRIPTOR as the pure-Python or the upb descriptor; both carry what is read here.
    result: dict[str, Any] = _converter(cast(Descriptor, message.DESCRIPTOR))(message)
    return result


def reference_json(message: Message) -> dict[str, Any]:
    """What ``to_json`` answers, by ``json_format`` alone (the fallback, and the tests' reference)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return _int64_as_numbers(message, data)


Convert = Callable[[Any], Any]
_CONVERTERS: dict[str, Convert] = {}
# Well-known types printed as a string by their own method, as json_format does.
_JSON_STRING_TYPES = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"})
_SCALAR_DEFAULTS = {FieldDescriptor.CPPTYPE_STRING: "", FieldDescriptor.CPPTYPE_BOOL: False}


def _converter(descriptor: Descriptor) -> Convert:
    """The function printing messages of type ``descriptor``, made on first use."""
    found = _CONVERTERS.get(descriptor.full_name)
    if found is None:
        # Registered before its fields are made: a message type that contains itself finds it.
        _CONVERTERS[descriptor.full_name] = lambda m: _CONVERTERS[descriptor.full_name](m)
        found = _CONVERTERS[descriptor.full_name] = _make_converter(descriptor)
    return found


def _make_converter(descriptor: Descriptor) -> Convert:
    if descriptor.full_name == "google.protobuf.Timestamp":
        return lambda m: _timestamp_json(m.seconds, m.nanos)
    if descriptor.full_name in _JSON_STRING_TYPES:
        return lambda m: m.ToJsonString()
    if descriptor.full_name.split(".")[0] == "google" or not _printable(descriptor):
        return reference_json if descriptor.full_name.split(".")[0] != "google" else _google_json
    # Each field's name and converter (None: printed as it is), by descriptor; and the fields without presence,
    # in declaration order, with their JSON default.
    fields: dict[FieldDescriptor, tuple[str, Convert | None]] = {}
    defaults: list[tuple[str, Any]] = []
    for field in descriptor.fields:
        one = _value_converter(field)
        if field.is_repeated:
            fields[field] = (field.name, (lambda c: lambda values: [c(v) for v in values])(one) if one is not _same
                             else list)
            defaults.append((field.name, list))
        else:
            fields[field] = (field.name, None if one is _same else one)
            if not field.has_presence:
                defaults.append((field.name, _default_json(field)))

    def convert(message: Any) -> dict[str, Any]:
        js = {}
        for field, value in message.ListFields():
            name, one = fields[field]
            js[name] = value if one is None else one(value)
        for name, default in defaults:
            if name not in js:
                js[name] = default() if default is list else default
        return js

    return convert


@lru_cache(maxsize=8192)
def _timestamp_json(seconds: int, nanos: int) -> str:
    """A Timestamp's JSON text, remembered: a page's members repeat theirs (registered, created, updated), and
    printing one costs some 1.6 us, its look-up a tenth of that."""
    return Timestamp(seconds=seconds, nanos=nanos).ToJsonString()


def _printable(descriptor: Descriptor) -> bool:
    """Whether the converter prints this type's own fields as json_format would (else json_format does)."""
    for field in descriptor.fields:
        if field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
            return False
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            return False
        if field.enum_type is not None and (field.enum_type.is_closed or _enum_json_names()
                                            or field.enum_type.full_name == "google.protobuf.NullValue"):
            return False
    return not descriptor.extension_ranges


@cache
def _enum_json_names() -> bool:
    """Whether enum values may carry their own JSON name (``pb.enumvalue.json``), which json_format prints."""
    try:
        descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return False
    return True


def _value_converter(field: FieldDescriptor) -> Convert:
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        assert field.message_type is not None  # a message field has its message's descriptor
        return _converter(field.message_type)
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        assert field.enum_type is not None  # an enum field has its enum's descriptor
        names = {value.number: value.name for value in field.enum_type.values}
        return lambda number: names.get(number, number)  # an open enum's unknown number prints as the number
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("utf-8")
    return _same  # strings, bools and integers (int64 as numbers)


def _same(value: Any) -> Any:
    return value


def _default_json(field: FieldDescriptor) -> Any:
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        return _value_converter(field)(field.default_value)
    return _SCALAR_DEFAULTS.get(field.cpp_type, 0)  # every integer type prints 0


def _google_json(message: Message) -> Any:
    """A well-known type (Struct, Value, wrappers, Any, ...) as json_format prints it inside a message."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


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
