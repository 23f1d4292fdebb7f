"""The OpenAPI 3.1 document of every route, built from the same bindings and descriptors the
transcoder serves (so the document cannot drift from the routes)."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.bindings import Binding

FD = FieldDescriptor
INTEGERS = {FD.TYPE_INT32: (-(2**31), 2**31 - 1), FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
            FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FD.TYPE_UINT32: (0, 2**32 - 1), FD.TYPE_FIXED32: (0, 2**32 - 1),
            FD.TYPE_INT64: (-(2**63), 2**63 - 1), FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
            FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1), FD.TYPE_UINT64: (0, 2**64 - 1),
            FD.TYPE_FIXED64: (0, 2**64 - 1)}
WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": "string", "description": "comma-separated field paths"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string", "description": "google.rpc code name, e.g. INVALID_ARGUMENT"},
                   "message": {"type": "string"},
                   "field": {"type": "string", "description": "the request field (or route) at fault"},
                   "reason": {"type": "string",
                              "description": "stable UPPER_SNAKE reason of the google.rpc.ErrorInfo detail"},
                   "details": {"type": "array", "description": "google.rpc details (ErrorInfo, BadRequest, "
                               "RetryInfo), each with its @type", "items": {"type": "object"}}}}}}


class Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR}

    def ref(self, name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        name = enum.full_name
        if name not in self.components:
            self.components[name] = {"type": "string", "enum": [v.name for v in enum.values]}
        return self.ref(name)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = self.field(field.message_type.fields_by_name["value"])
            return {"type": "object", "additionalProperties": value}
        single = self.single(field)
        return {"type": "array", "items": single} if field.is_repeated else single

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type in INTEGERS:
            low, high = INTEGERS[field.type]
            return {"type": "integer", "minimum": low, "maximum": high}
        if field.type == FD.TYPE_BOOL:
            return {"type": "boolean"}
        if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            return {"type": "number"}
        if field.type == FD.TYPE_STRING:
            return {"type": "string"}
        if field.type == FD.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if field.type == FD.TYPE_ENUM:
            assert field.enum_type is not None  # an enum field has its enum's descriptor
            return self.enum(field.enum_type)
        assert field.message_type is not None  # every other field is a message field
        return self.message(field.message_type)

    def message(self, message: Descriptor, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        if message.full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[message.full_name])
        if skip:
            return self._object(message, skip)
        name = message.full_name
        if name not in self.components:
            self.components[name] = {}  # a placeholder: recursive messages refer to themselves
            self.components[name] = self._object(message, skip)
        return self.ref(name)

    def _object(self, message: Descriptor, skip: frozenset[str]) -> dict[str, Any]:
        properties = {f.name: self.field(f) for f in message.fields if f.name not in skip}
        return {"type": "object", "properties": properties, "additionalProperties": False}


def _query_parameters(schemas: Schemas, message: Descriptor, skip: set[str], prefix: str = "",
                      depth: int = 0) -> list[dict[str, Any]]:
    params = []
    for field in message.fields:
        name = f"{prefix}{field.name}"
        if name in skip:
            continue
        nested = field.message_type
        if nested is not None and nested.full_name not in WELL_KNOWN:
            if not field.is_repeated and not nested.GetOptions().map_entry and depth < 2:
                params.extend(_query_parameters(schemas, nested, skip, f"{name}.", depth + 1))
            continue
        schema = schemas.field(field)
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
        if field.is_repeated:
            param.update(style="form", explode=True)
        params.append(param)
    return params


def document(bindings: list[Binding], extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for binding in bindings:
        path = openapi_path(binding)
        method = binding.method
        skip = set(binding.variables.values())
        parameters: list[dict[str, Any]] = [
            {"name": dotted.rsplit(".", 1)[-1], "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1}, "description": f"sets {dotted}"}
            for dotted in binding.variables.values()]
        operation: dict[str, Any] = {
            "operationId": binding.operation_id if binding.template == _first_template(bindings, method)
            else f"{binding.operation_id}_{binding.verb.lower()}_{len(binding.variables)}",
            "tags": [method.containing_service.name],
            "summary": method.name,
            "security": [{"bearer": []}],
        }
        if binding.is_upload:
            operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}}}}}}
        elif binding.body == "*":
            top = {name for name in skip if "." not in name}
            operation["requestBody"] = {"required": False, "content": {"application/json": {
                "schema": schemas.message(method.input_type, frozenset(top))}}}
        elif binding.body:
            body_field = method.input_type.fields_by_name[binding.body]
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": schemas.field(body_field)}}}
        else:
            parameters.extend(_query_parameters(schemas, method.input_type, skip))
        if "request_id" in method.input_type.fields_by_name and binding.verb != "GET":
            parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "maxLength": 128},
                               "description": "becomes the request_id: a repeat returns the first answer"})
        if parameters:
            operation["parameters"] = parameters
        if binding.is_download:
            ok: dict[str, Any] = {"description": "a CSV file", "content": {"text/csv": {"schema": {"type": "string"}}}}
        else:
            ok = {"description": "OK", "content": {"application/json": {"schema": schemas.message(method.output_type)}}}
        error = {"description": "an error naming the field or route",
                 "content": {"application/json": {"schema": schemas.ref("Error")}}}
        operation["responses"] = {"200": ok, "400": error, "401": error, "403": error, "404": error,
                                  "409": error, "413": error, "429": error, "503": error, "504": error}
        paths.setdefault(path, {})[binding.verb.lower()] = operation
    paths.update(extra_paths or {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Crowdpack API", "version": "v1",
                 "description": "Every RPC of the customer, ledger and alert services over HTTP/JSON (AIP-127 "
                                "mappings from the protos). JSON uses the proto field names; int64 values are "
                                "JSON numbers; enums travel by name. Sign in with POST /v1/sessions and send "
                                "`Authorization: Bearer <access_token>`."},
        "paths": paths,
        "components": {"schemas": schemas.components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def openapi_path(binding: Binding) -> str:
    """The template with each variable named by its last part (``{package.package_id}`` -> ``{package_id}``)."""
    path = binding.template
    for dotted in binding.variables.values():
        path = path.replace("{" + dotted + "}", "{" + dotted.rsplit(".", 1)[-1] + "}")
    return path


def _first_template(bindings: list[Binding], method: Any) -> str:
    return next(b.template for b in bindings if b.method is method)
