"""Domain errors, and the one place where they become gRPC status codes.

Servicers and domain code raise these; ``ErrorInterceptor`` turns them into a status
with a one-line message (``field: reason``), a ``google.rpc.ErrorInfo`` detail with a stable
machine-readable reason (UPPER_SNAKE, domain ``crowdpack.io``, metadata such as ``field``) that
clients translate (the console shows Chinese text by reason and field), and, for a bad field, a
``google.rpc.BadRequest`` detail naming it. Anything else becomes INTERNAL (reason ``INTERNAL``)
with no stack trace on the wire (the trace goes to the log).

The reason is the one an error is raised with (``error_reason=``, for a condition a client acts
on, e.g. ``PHONE_HELD_BY_DELETED_MEMBER``), else its class's in ``REASONS`` (with the field in
the metadata, the pair says what went wrong: ``FIELD_INVALID`` + ``phone``). docs/errors.md lists them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.logs import get_logger

log = get_logger(__name__)


DOMAIN = "crowdpack.io"


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, field: str | None = None, error_reason: str | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        self.field = field
        self.reason = message
        self.message = f"{field}: {message}" if field else message
        self.error_reason = error_reason
        self.metadata = dict(metadata or {})
        super().__init__(self.message)

    def within(self, prefix: str) -> DomainError:
        """The same error, its field named inside ``prefix``: ``amount`` within ``postings[3]`` is
        ``postings[3].amount``. Hot paths check a part with short names and name the whole only on error."""
        return type(self)(self.reason, field=f"{prefix}.{self.field}" if self.field else prefix,
                          error_reason=self.error_reason, metadata=self.metadata)


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(DomainError):
    """A service this one depends on cannot be reached; the caller may retry with the same request_id."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(DomainError):
    """Too many attempts: the caller may try again after ``retry_after_s`` (a RetryInfo detail says when)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_s: float, field: str | None = None,
                 error_reason: str | None = None, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, field=field, error_reason=error_reason, metadata=metadata)
        self.retry_after_s = retry_after_s

    def within(self, prefix: str) -> DomainError:
        return ResourceExhausted(self.reason, retry_after_s=self.retry_after_s,
                                 field=f"{prefix}.{self.field}" if self.field else prefix,
                                 error_reason=self.error_reason, metadata=self.metadata)


class Aborted(DomainError):
    """A conflict with a concurrent writer; the caller may retry with the same request_id."""

    code = grpc.StatusCode.ABORTED


# The reason of an error raised without one, by status code.
REASONS = {
    grpc.StatusCode.INVALID_ARGUMENT: "FIELD_INVALID",
    grpc.StatusCode.NOT_FOUND: "NOT_FOUND",
    grpc.StatusCode.ALREADY_EXISTS: "ALREADY_EXISTS",
    grpc.StatusCode.FAILED_PRECONDITION: "FAILED_PRECONDITION",
    grpc.StatusCode.PERMISSION_DENIED: "PERMISSION_DENIED",
    grpc.StatusCode.UNAUTHENTICATED: "UNAUTHENTICATED",
    grpc.StatusCode.UNAVAILABLE: "DEPENDENCY_UNAVAILABLE",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RATE_LIMITED",
    grpc.StatusCode.ABORTED: "CONCURRENT_CHANGE",
    grpc.StatusCode.INTERNAL: "INTERNAL",
}
# A few fields whose error means one thing whatever raised it.
FIELD_REASONS = {(grpc.StatusCode.ALREADY_EXISTS, "request_id"): "REQUEST_ID_REUSED",
                 (grpc.StatusCode.INVALID_ARGUMENT, "page_token"): "PAGE_TOKEN_INVALID"}


def reason_of(err: DomainError) -> str:
    """The stable machine-readable reason of ``err`` (UPPER_SNAKE)."""
    if err.error_reason:
        return err.error_reason
    last = (err.field or "").rsplit(".", 1)[-1]
    return FIELD_REASONS.get((err.code, last)) or REASONS.get(err.code, err.code.name)


def error_info(reason: str, field: str | None = None, metadata: dict[str, str] | None = None) -> any_pb2.Any:
    """A packed google.rpc.ErrorInfo: the reason, our domain, and the field among its metadata."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata or {}))
    if field:
        info.metadata["field"] = field
    packed = any_pb2.Any()
    packed.Pack(info)
    return packed


def to_status(err: DomainError) -> grpc.Status:
    details = [error_info(reason_of(err), err.field, err.metadata)]
    if err.field:
        bad = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.message)]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    if isinstance(err, ResourceExhausted):
        packed = any_pb2.Any()
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(err.retry_after_s * 1000))
        packed.Pack(retry)
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, err.code.name), message=err.message, details=details)
    return rpc_status.to_status(status)


def retry_after_of(call_error: grpc.aio.AioRpcError | grpc.RpcError) -> float | None:
    """Seconds a RetryInfo detail asks the caller to wait, if any."""
    status = rpc_status.from_call(call_error) if hasattr(call_error, "trailing_metadata") else None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            return retry.retry_delay.ToMilliseconds() / 1000
    return None


def field_of(call_error: grpc.aio.AioRpcError | grpc.RpcError) -> str | None:
    """The field a BadRequest detail names, for clients that translate errors (the gateway)."""
    status = rpc_status.from_call(call_error) if hasattr(call_error, "trailing_metadata") else None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                return bad.field_violations[0].field
    return None


def error_info_of(call_error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call, if any."""
    status = rpc_status.from_call(call_error) if hasattr(call_error, "trailing_metadata") else None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def status_with_reason(code: grpc.StatusCode, message: str, reason: str) -> grpc.Status:
    """A status for code outside the DomainError path (interceptors), with its ErrorInfo."""
    return rpc_status.to_status(status_pb2.Status(code=getattr(code_pb2, code.name), message=message,
                                                  details=[error_info(reason)]))


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except DomainError as err:
            await context.abort_with_status(to_status(err))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error", method=method)
            await context.abort_with_status(status_with_reason(grpc.StatusCode.INTERNAL,
                                                               "internal error; see the service log", "INTERNAL"))

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps DomainError to its status code for every unary-response RPC of a server (unary or client-streaming)."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, handler_call_details.method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            # The same wrapper: its first argument is the request iterator instead of a request.
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, handler_call_details.method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
