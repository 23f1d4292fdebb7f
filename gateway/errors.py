"""Every error the gateway returns is JSON, never a stack trace:
{"error": {"code", "message", "field", "reason", "details"}}.

A service's status becomes the HTTP status of the google.rpc table grpc-gateway uses; ``code`` is the
status name, ``reason`` the stable reason of its google.rpc.ErrorInfo (``services/common/errors.py``),
``field`` the field a BadRequest detail names, ``details`` the status's details as JSON (each with its
``@type``: ErrorInfo, BadRequest, RetryInfo), and a RetryInfo detail becomes ``Retry-After``. The
gateway's own errors (a bad body, an unknown route) carry an ErrorInfo the same way.
"""

from __future__ import annotations

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_status import rpc_status
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.errors import REASONS, error_info, field_of, retry_after_of
from services.common.logs import get_logger

log = get_logger(__name__)

GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers


def _reason(code: str) -> str:
    member = getattr(grpc.StatusCode, code, None)
    return REASONS.get(member, code) if isinstance(member, grpc.StatusCode) else code


def _detail_json(detail: Message) -> dict[str, object]:
    return json_format.MessageToDict(detail, preserving_proto_field_name=True)


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None, *, reason: str | None = None,
                   details: list[dict[str, object]] | None = None) -> JSONResponse:
    """The error body; without ``details`` (the gateway's own errors) an ErrorInfo of ``reason`` (by default
    the one of ``code``) naming ``field``."""
    if details is None:
        details = [_detail_json(error_info(reason or _reason(code), field))]
    if reason is None:
        reason = next((str(d.get("reason")) for d in details
                       if str(d.get("@type", "")).endswith("google.rpc.ErrorInfo")), _reason(code))
    body: dict[str, object] = {"code": code, "message": message, "reason": reason}
    if field:
        body["field"] = field
    body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def from_rpc_error(err: grpc.aio.AioRpcError) -> JSONResponse:
    code = err.code()
    status = GRPC_TO_HTTP.get(code, 502)
    if status == 502 and code != grpc.StatusCode.CANCELLED:
        log.error("upstream failure", code=code.name, details=err.details())
        return error_response(502, code.name, "an upstream service failed; try again")
    if code == grpc.StatusCode.CANCELLED:
        return error_response(499, "CANCELLED", "the request was cancelled")
    retry = retry_after_of(err)
    headers = {"Retry-After": str(max(1, int(retry + 0.999)))} if retry is not None else None
    rich = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    details = [_detail_json(d) for d in rich.details] if rich is not None and rich.details else None
    return error_response(status, code.name, err.details() or code.name, field_of(err), headers, details=details)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HttpError)
    async def _http_error(_request: Request, err: HttpError) -> JSONResponse:
        return error_response(err.status, err.code, err.message, err.field, err.headers)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc_error(_request: Request, err: grpc.aio.AioRpcError) -> JSONResponse:
        return from_rpc_error(err)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404:
            return error_response(404, "NOT_FOUND", f"{_request.url.path}: no such route", "route")
        if err.status_code == 405:
            return error_response(405, "METHOD_NOT_ALLOWED",
                                  f"{_request.method} {_request.url.path}: method not allowed on this route", "route")
        return error_response(err.status_code, "HTTP_ERROR", str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(400, "INVALID_ARGUMENT", f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled gateway error")
        return error_response(500, "INTERNAL", "internal error; see the gateway log")
