"""The one transcoder: HTTP/JSON in, the bound RPC called, JSON (or a CSV file) out.

For each ``Binding`` it registers one Starlette route whose endpoint:
1. authenticates the caller (``gateway.auth``) and checks a member reaches only itself;
2. builds the request message: path variables, then the JSON body (``body: "*"`` or one field)
   or, without a body, the query string (``a.b=1``, repeated fields by repeating the key), with
   protobuf's JSON mapping and the proto field names; an unknown field or a wrong type is a 400
   naming it; an ``Idempotency-Key`` header becomes the request_id of a mutation;
3. calls the service on the channel opened once at start, with a deadline, cancelling the call
   when the HTTP client goes away;
4. answers the response message as JSON, or, for an RPC answering ``bytes csv``, a CSV file.
A client-streaming upload RPC (``bytes chunk``) reads a multipart file and streams it on in chunks; the
path's variables fill its first message.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import orjson
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import authenticate, check_member_scope
from gateway.bindings import Binding
from gateway.errors import HttpError
from gateway.translate import to_json, to_proto

UPLOAD_CHUNK = 1024 * 1024
MUTATION_VERBS = {"POST", "PATCH", "PUT", "DELETE"}


class JsonReply(Response):
    """A JSON reply, the bytes Starlette's ``JSONResponse`` makes of it (compact, UTF-8), by orjson: a page of
    twenty members is encoded in a tenth of the time ``json.dumps`` takes. What it encodes comes from ``to_json``,
    whose numbers are integers (floating point values are printed by ``json_format``, NaN as a string)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def _field_path(descriptor: Descriptor, dotted: str) -> list[FieldDescriptor]:
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in dotted.split("."):
        found = current.fields_by_name.get(part) if current is not None else None
        if found is None:
            raise HttpError(400, "INVALID_ARGUMENT", f"{dotted}: unknown field", field=dotted)
        fields.append(found)
        current = found.message_type
    return fields


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        nested = data.setdefault(part, {})
        if not isinstance(nested, dict):
            raise HttpError(400, "INVALID_ARGUMENT", f"{dotted}: conflicts with {part}", field=dotted)
        data = nested
    data[parts[-1]] = value


def _scalar_from_text(field: FieldDescriptor, text: str, name: str) -> Any:
    """A query or path value as the JSON value protobuf's mapping expects for ``field``."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0", ""):
            return False
        raise HttpError(400, "INVALID_ARGUMENT", f"{name}: expected true or false", field=name)
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None  # an enum field has its enum's descriptor
        values = field.enum_type.values_by_name
        if text in values or (text.lstrip("-").isdigit() and int(text) in field.enum_type.values_by_number):
            return text if text in values else int(text)
        raise HttpError(400, "INVALID_ARGUMENT", f"{name}: expected one of {', '.join(values)}", field=name)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return text  # well-known types parse from their string form (Timestamp, FieldMask, ...)
    return text  # the JSON mapping accepts numbers and enum names as strings


def _check_fields(data: Any, descriptor: Descriptor, prefix: str = "") -> None:
    """Names an unknown field before protobuf's parser does (its message does not say which one)."""
    if not isinstance(data, dict) or descriptor.GetOptions().map_entry:
        return
    if descriptor.full_name.startswith("google.protobuf."):
        return
    for key, value in data.items():
        name = f"{prefix}{key}"
        found = descriptor.fields_by_name.get(key) or next(
            (f for f in descriptor.fields if f.json_name == key), None)
        if found is None:
            raise HttpError(400, "INVALID_ARGUMENT", f"{name}: unknown field", field=name)
        if found.message_type is not None and not found.message_type.GetOptions().map_entry:
            if found.is_repeated and isinstance(value, list):
                for i, item in enumerate(value):
                    _check_fields(item, found.message_type, f"{name}[{i}].")
            else:
                _check_fields(value, found.message_type, f"{name}.")


def parse_into(data: dict[str, Any], descriptor: Descriptor) -> Message:
    _check_fields(data, descriptor)
    return to_proto(data, message_class(descriptor)())


async def read_json(request: Request, limit: int) -> Any:
    size = int(request.headers.get("content-length") or 0)
    if size > limit:
        raise HttpError(413, "INVALID_ARGUMENT", f"body: larger than {limit:,} bytes", field="body")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise HttpError(413, "INVALID_ARGUMENT", f"body: larger than {limit:,} bytes", field="body")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise HttpError(400, "INVALID_ARGUMENT", f"body: malformed JSON ({err})", field="body") from None


async def build_request(binding: Binding, request: Request, limit: int) -> Message:
    descriptor = binding.method.input_type
    data: dict[str, Any] = {}
    if binding.body == "*":
        body = await read_json(request, limit)
        if not isinstance(body, dict):
            raise HttpError(400, "INVALID_ARGUMENT", "body: must be a JSON object", field="body")
        data = body
    elif binding.body:
        data = {binding.body: await read_json(request, limit)}
    if binding.body != "*":
        for key in request.query_params:
            fields = _field_path(descriptor, key)
            leaf = fields[-1]
            if leaf.message_type is not None and leaf.message_type.full_name.split(".")[0] != "google":
                raise HttpError(400, "INVALID_ARGUMENT", f"{key}: a message is set field by field ({key}.x=...)",
                                field=key)
            values = request.query_params.getlist(key)
            if leaf.is_repeated:
                _set_dotted(data, key, [_scalar_from_text(leaf, v, key) for v in values])
            else:
                if len(values) > 1:
                    raise HttpError(400, "INVALID_ARGUMENT", f"{key}: given more than once", field=key)
                _set_dotted(data, key, _scalar_from_text(leaf, values[0], key))
    for param, dotted in binding.variables.items():
        leaf = _field_path(descriptor, dotted)[-1]
        _set_dotted(data, dotted, _scalar_from_text(leaf, request.path_params[param], dotted))
    if "request_id" in descriptor.fields_by_name and binding.verb in MUTATION_VERBS:
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key:
            data["request_id"] = idempotency_key
        elif not data.get("request_id"):
            data["request_id"] = uuid.uuid4().hex  # a one-off call: retrying it is the client's choice
    return parse_into(data, descriptor)


async def call_cancellable(request: Request, call: Any) -> Any:
    """Awaits the RPC; if the HTTP client disconnects first, the RPC is cancelled too (nobody reads the 499)."""
    gone = asyncio.Event()

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone.set()
                call.cancel()
                return

    watcher = asyncio.create_task(disconnected())
    try:
        return await call
    except asyncio.CancelledError:
        if gone.is_set():
            raise HttpError(499, "CANCELLED", "the client closed the request") from None
        raise
    finally:
        watcher.cancel()


def csv_response(binding: Binding, reply: Message) -> Response:
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", binding.method.name.removeprefix("Export")).lower()
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"',
               "X-Row-Count": str(getattr(reply, "row_count", 0)),
               "X-Truncated": "true" if getattr(reply, "truncated", False) else "false"}
    return Response(reply.csv, media_type="text/csv; charset=utf-8", headers=headers)  # type: ignore[attr-defined]  # CSV replies


async def upload_chunks(binding: Binding, request: Request, limit: int) -> AsyncIterator[Message]:
    """The multipart ``file`` part as the upload RPC's messages, one chunk at a time: the file is never
    held whole (the parser hands over pieces as they arrive, at most one chunk is buffered)."""
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HttpError(400, "INVALID_ARGUMENT", "file: upload the file as multipart/form-data", field="file")
    if int(request.headers.get("content-length") or 0) > limit:
        raise HttpError(413, "INVALID_ARGUMENT", f"file: larger than {limit:,} bytes", field="file")
    cls = message_class(binding.method.input_type)
    request_id = request.headers.get("idempotency-key") or uuid.uuid4().hex
    # The path's variables (``/v1/members/{member_id}/voucherFiles``) fill the first message beside the file.
    named = {dotted: request.path_params[param] for param, dotted in binding.variables.items()}
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "file_name": None, "in_file": False}
    buffer = bytearray()
    ready: list[bytes] = []

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        state["in_file"] = options.get(b"name") == b"file" and state["file_name"] is None
        if state["in_file"]:
            state["file_name"] = (options.get(b"filename") or b"upload").decode("utf-8", "replace")
        state["headers"] = {}

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            buffer.extend(data[start:end])
            while len(buffer) >= UPLOAD_CHUNK:
                ready.append(bytes(buffer[:UPLOAD_CHUNK]))
                del buffer[:UPLOAD_CHUNK]

    def on_part_end() -> None:
        state["in_file"] = False

    parser = MultipartParser(boundary, {
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end})
    received, first = 0, True

    def message(chunk: bytes) -> Message:
        nonlocal first
        if first:
            first = False
            return cls(request_id=request_id, file_name=state["file_name"] or "upload", chunk=chunk, **named)
        return cls(chunk=chunk)

    async for piece in request.stream():
        received += len(piece)
        if received > limit:
            raise HttpError(413, "INVALID_ARGUMENT", f"file: larger than {limit:,} bytes", field="file")
        parser.write(piece)
        while ready:
            yield message(ready.pop(0))
    parser.finalize()
    if state["file_name"] is None:
        raise HttpError(400, "INVALID_ARGUMENT", "file: no part named 'file' in the form", field="file")
    if buffer or first:
        yield message(bytes(buffer))


def endpoint(binding: Binding) -> Callable[[Request], Awaitable[Response]]:
    output = message_class(binding.method.output_type)
    input_cls = message_class(binding.method.input_type)

    async def handle(request: Request) -> Response:
        app = request.app
        settings = app.state.settings
        caller = await authenticate(request, binding)
        check_member_scope(binding, request, caller)
        channel: grpc.aio.Channel = app.state.clients.channel(binding.backend)
        metadata = app.state.signer.metadata(caller)
        if binding.is_upload:
            multi = channel.stream_unary(binding.full_method, request_serializer=input_cls.SerializeToString,
                                         response_deserializer=output.FromString)
            errors: list[HttpError] = []

            async def guarded() -> AsyncIterator[Message]:
                try:
                    async for item in upload_chunks(binding, request, settings.max_upload_bytes):
                        yield item
                except HttpError as err:
                    errors.append(err)
                    raise

            call = multi(guarded(), timeout=settings.upload_timeout_s, metadata=metadata)
            try:
                reply = await call
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                # A bad upload (not multipart, too large, no file part) ends the stream; its error is the answer.
                if errors:
                    raise errors[0] from None
                raise
        else:
            message = await build_request(binding, request, settings.max_body_bytes)
            unary = channel.unary_unary(binding.full_method, request_serializer=input_cls.SerializeToString,
                                        response_deserializer=output.FromString)
            reply = await call_cancellable(
                request, unary(message, timeout=settings.rpc_timeout_s, metadata=metadata))
        if binding.is_download:
            return csv_response(binding, reply)
        return JsonReply(to_json(reply))

    handle.__name__ = binding.operation_id
    return handle
