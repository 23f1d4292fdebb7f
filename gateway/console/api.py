"""The console's one door to the system: the gateway's own HTTP API, called in-process.

Pages name an RPC (``"MemberService.ListMembers"``) and pass the request as JSON-shaped
values; this module finds the RPC's HTTP route, fills the path from the request, sends the
rest as the query (GET, DELETE) or the JSON body, and returns the JSON answer. An error
answer becomes an :class:`ApiError` carrying the field the gateway named, which the page
shows beside that field, and its stable reason (docs/errors.md): the person reads the catalogue's
text for that reason in their language (``error.<REASON>``), else the server's own message.

Routes come from the ``google.api.http`` annotations in the generated descriptors, which the
gateway's transcoder serves. A request carrying a list of objects (a crowd filter's condition
groups) cannot travel in a query string: it takes the RPC's binding with a body (for example
``POST /v1/members:search`` beside ``GET /v1/members``).

The call goes through ``httpx.ASGITransport`` into the same FastAPI application that
serves the API to everyone else, with the signed-in person's access token: the console
has no back door to the services.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import httpx
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pool
from starlette.types import ASGIApp

from gateway.console.i18n import Labels

# The service modules whose descriptors name the routes (imported for their registration).
SERVICE_MODULES = (
    "crowdpack.customer.v1.member_service_pb2",
    "crowdpack.customer.v1.level_service_pb2",
    "crowdpack.customer.v1.classification_service_pb2",
    "crowdpack.customer.v1.settings_service_pb2",
    "crowdpack.customer.v1.organization_service_pb2",
    "crowdpack.customer.v1.business_customer_service_pb2",
    "crowdpack.customer.v1.import_service_pb2",
    "crowdpack.customer.v1.crowd_service_pb2",
    "crowdpack.ledger.v1.ledger_service_pb2",
    "crowdpack.alert.v1.alert_service_pb2",
)

PACKAGES = ("crowdpack.customer.v1", "crowdpack.ledger.v1", "crowdpack.alert.v1")

SIGN_IN_PATH = "/v1/sessions"
REFRESH_PATH = "/v1/sessions:refresh"
SIGN_OUT_PATH = "/v1/sessions:revoke"
# How long a remembered list (levels, tags, groups, malls, stores for the pickers) serves as it is; older, it
# still serves while it is asked anew in the background (the next page has the new answer), until FORGET_S,
# when a page waits for it. The person's own change (any call but a GET) forgets every list at once.
REMEMBER_S = 60.0
FORGET_S = 600.0
VARIABLE = re.compile(r"\{([a-z0-9_.]+)(?:=[^}]*)?\}")


class ApiError(Exception):
    """One clear line for people, and the request field it is about (if the gateway named one).

    ``message`` is what the person reads (the catalogue's text for ``reason`` once :meth:`in_language`
    has chosen it); ``server_message`` stays the gateway's own English line."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.reason = status, code, message, field, reason
        self.server_message = message

    def in_language(self, t: Labels | None) -> ApiError:
        """This error with the text for its reason in ``t``'s language, else the server's message."""
        if t is None:
            return self
        text = t.error(self.reason, detail=detail_of(self.server_message, self.field))
        if text is not None:
            self.message = text
        return self

    @property
    def unauthenticated(self) -> bool:
        return self.status == 401


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: str  # "*": every field not in the path; "": none (query string); else one field's name


@cache
def routes() -> dict[str, list[Route]]:
    """Every RPC the gateway serves, by ``Service.Method``: its bindings, the primary one first."""
    import importlib

    for module in SERVICE_MODULES:
        importlib.import_module(module)
    found: dict[str, list[Route]] = {}
    pool = descriptor_pool.Default()
    for package in PACKAGES:
        for service in _services(pool, package):
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
                bindings = [b for b in (_route_of(rule), *map(_route_of, rule.additional_bindings)) if b]
                if bindings:
                    found[f"{service.name}.{method.name}"] = bindings
    return found


def _route_of(rule: http_pb2.HttpRule) -> Route | None:
    kind = rule.WhichOneof("pattern")
    if kind is None or kind == "custom":
        return None
    return Route(kind.upper(), getattr(rule, kind), rule.body)


def serves(rpc: str) -> bool:
    return rpc in routes()


def _needs_body(value: Any) -> bool:
    """A list of objects (repeated messages) cannot travel in a query string."""
    if isinstance(value, dict):
        return any(_needs_body(v) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict) or _needs_body(v) for v in value)
    return False


def _services(pool: descriptor_pool.DescriptorPool, package: str) -> list[Any]:
    services: list[Any] = []
    for module in SERVICE_MODULES:
        if not module.startswith(package):
            continue
        name = module.rsplit(".", 1)[1].removesuffix("_pb2")
        try:
            file = pool.FindFileByName(f"{package.replace('.', '/')}/{name}.proto")
        except KeyError:
            continue
        services.extend(file.services_by_name.values())
    return services


def _take(values: dict[str, Any], dotted: str) -> Any:
    """Removes and returns ``values[a][b]`` for ``a.b``."""
    *parents, last = dotted.split(".")
    node = values
    for part in parents:
        node = node.get(part, {})
    return node.pop(last, "")


def flatten_query(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Query parameters as the transcoder reads them: ``filter.search=x``, a repeated field repeats."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            pairs.extend(flatten_query(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            pairs.extend((name, _scalar(v)) for v in value)
        elif value is not None and value != "":
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_request(rpc: str, request: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]], dict[str, Any] | None]:
    """(method, path, query pairs, JSON body) for one RPC call."""
    bindings = routes().get(rpc)
    if not bindings:
        raise ApiError(404, "NOT_FOUND", f"the gateway serves no route for {rpc}")
    route = bindings[0]
    if not route.body and _needs_body(request):
        route = next((b for b in bindings if b.body), route)
    values = _deep_copy(request)
    path = VARIABLE.sub(lambda m: quote(str(_take(values, m.group(1))), safe=""), route.path)
    if route.body == "*":
        return route.method, path, [], values
    if route.body:
        body = values.pop(route.body, {})
        return route.method, path, flatten_query(values), body
    return route.method, path, flatten_query(values), None


def _call_key(rpc: str, request: dict[str, Any]) -> str:
    return rpc + json.dumps(request, sort_keys=True, ensure_ascii=False, default=str)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def detail_of(message: str, field: str | None) -> str:
    """The server's message without its leading ``field:`` (the page shows the error beside that field)."""
    if field and message.startswith(f"{field}:"):
        return message[len(field) + 1:].strip()
    head, sep, rest = message.partition(": ")
    return rest if sep and re.fullmatch(r"[a-z_][a-z0-9_.\[\]]*", head) else message


def _reason_of(error: dict[str, Any]) -> str:
    reason = error.get("reason")
    if not reason:
        for detail in error.get("details", []) or []:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
                reason = detail.get("reason")
                break
    return str(reason or "")


def _error_of(response: httpx.Response, t: Labels | None = None) -> ApiError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or response.reason_phrase or "request failed")
    code = str(error.get("code") or error.get("status") or response.status_code)
    field = error.get("field")
    if not field:
        for detail in error.get("details", []) or []:
            for violation in detail.get("fieldViolations", detail.get("field_violations", [])) or []:
                field = violation.get("field")
                break
    return ApiError(response.status_code, code, message, field or None, _reason_of(error)).in_language(t)


def _answer(response: httpx.Response, t: Labels | None = None) -> dict[str, Any]:
    if response.status_code >= 400:
        raise _error_of(response, t)
    if response.headers.get("content-type", "").startswith("text/csv"):
        return {"csv": response.content, "row_count": int(response.headers.get("x-row-count") or 0),
                "truncated": response.headers.get("x-truncated") == "true"}
    return response.json() if response.content else {}


class Api:
    """The gateway's API as one person sees it: their access token on every call, errors in their language."""

    def __init__(self, app: ASGIApp, access_token: str | None = None, timeout: float = 30.0,
                 labels: Labels | None = None, memory: dict[str, tuple[float, dict[str, Any]]] | None = None) -> None:
        self._app = app
        self.access_token = access_token
        self._timeout = timeout
        self.labels = labels
        self._kept: dict[str, dict[str, Any] | ApiError] = {}
        self._memory = memory if memory is not None else {}

        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def _remembered(self, key: str) -> dict[str, Any] | None:
        """A remembered answer a page may show without waiting (younger than FORGET_S)."""
        hit = self._memory.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < FORGET_S else None

    async def call_remembered(self, rpc: str, request: dict[str, Any]) -> dict[str, Any]:
        """A list that rarely changes and that a page only picks names from (levels, tags, groups, malls,
        stores): the answer given less than REMEMBER_S ago; older (up to FORGET_S) it is still given while
        it is asked anew in the background; else asked now. The memory is the signed-in person's
        (``memory``), so it shows what their role may see; their own change forgets it."""
        key = _call_key(rpc, request)
        hit = self._memory.get(key)
        if hit is not None and time.monotonic() - hit[0] < FORGET_S:
            if time.monotonic() - hit[0] >= REMEMBER_S and key not in self._refreshing:
                self._refreshing[key] = asyncio.create_task(self._refresh(key, rpc, request))
            return hit[1]
        answer = await self.call(rpc, request)
        self._memory[key] = (time.monotonic(), answer)
        return answer

    async def _refresh(self, key: str, rpc: str, request: dict[str, Any]) -> None:
        """Asks for a remembered list anew, off the page's path (no UI: it only updates the memory)."""
        try:
            self._memory[key] = (time.monotonic(), await self.call(rpc, request))
        except Exception:  # noqa: BLE001 - the old answer stays; the next page asks again
            pass
        finally:
            self._refreshing.pop(key, None)

    def _client(self) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {self.access_token}"} if self.access_token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self._app), base_url="http://console",
                                 headers=headers, timeout=self._timeout)

    async def prefetch(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Makes ``calls`` at once (concurrently, not one after another) and keeps each answer, or its API error,
        for the page's own call with the same request, which takes it instead of calling again (once: a later
        call asks anew). A page that needs several independent answers before it draws waits for the slowest
        rather than for their sum. Touches no UI, so it may run outside the page's task."""
        calls = [(rpc, request) for rpc, request in calls if self._remembered(_call_key(rpc, request)) is None]
        answers = await asyncio.gather(*(self.call(rpc, request) for rpc, request in calls), return_exceptions=True)
        for (rpc, request), answer in zip(calls, answers, strict=True):
            if isinstance(answer, (dict, ApiError)):
                self._kept[_call_key(rpc, request)] = answer

    async def call(self, rpc: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """The RPC's answer as JSON values; a CSV answer as ``{"csv": bytes, "row_count", "truncated"}``."""
        kept = self._kept.pop(_call_key(rpc, request or {}), None) if self._kept else None
        if isinstance(kept, ApiError):
            raise kept
        if kept is not None:
            return kept
        method, path, query, body = build_request(rpc, request or {})
        if method != "GET":
            self._memory.clear()
        async with self._client() as http:
            response = await http.request(method, path, params=tuple(query), json=body)
        return _answer(response, self.labels)

    async def upload(self, rpc: str, data: bytes, filename: str, request: dict[str, Any] | None = None,
                     ) -> dict[str, Any]:
        """A file for an upload RPC, sent as the multipart ``file`` part (the transcoder streams it on)."""
        method, path, query, _ = build_request(rpc, request or {})
        async with self._client() as http:
            response = await http.request(method, path, params=tuple(query),
                                          files={"file": (filename, data, "application/octet-stream")})
        return _answer(response, self.labels)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A plain POST (sign-in and refresh, which are not RPCs)."""
        async with self._client() as http:
            response = await http.post(path, json=body)
        if response.status_code >= 400:
            raise _error_of(response, self.labels)
        return response.json() if response.content else {}
