"""Ledger routes: a member's balances and statement, manual adjustments, and their reason templates.

The gateway authenticates and translates; the ledger service decides. Enum values travel by
name (``ASSET_POINTS``), times as RFC 3339, money as JSON numbers of fen. Mutations take the
``Idempotency-Key`` header (or ``request_id`` in the body) as their request_id.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from google.protobuf.message import Message

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from gateway.auth import authenticate, forwarded
from gateway.routes.members import request_id
from gateway.translate import json_body, to_json, to_proto
from services.common.auth import Caller

router = APIRouter(tags=["ledger"])


def from_query(request: Request, message: Message, **fixed: Any) -> Message:
    """``message`` from the query string (repeated fields may repeat) and the path's ``fixed`` values."""
    values: dict[str, Any] = {}
    for key in request.query_params:
        descriptor = message.DESCRIPTOR.fields_by_name.get(key)
        repeated = descriptor is not None and descriptor.is_repeated
        values[key] = request.query_params.getlist(key) if repeated else request.query_params[key]
    return to_proto({**values, **fixed}, message)


def stub(request: Request) -> Any:
    return request.app.state.clients.ledger


def timeout(request: Request) -> float:
    return request.app.state.settings.rpc_timeout_s


@router.get("/v1/members/{member_id}/balances")
async def get_balances(member_id: str, request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    message = from_query(request, pb.GetBalancesRequest(), member_id=member_id)
    reply = await stub(request).GetBalances(message, metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply)


@router.get("/v1/members/{member_id}/entries")
async def list_entries(member_id: str, request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    """The statement of one of the member's accounts: ``?asset=ASSET_POINTS`` (required), filters, paging."""
    message = from_query(request, pb.ListEntriesRequest(), member_id=member_id)
    reply = await stub(request).ListEntries(message, metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply)


@router.post("/v1/members/{member_id}/adjustments", status_code=201)
async def adjust_balance(member_id: str, request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    body = request_id(request, await json_body(request))
    message = to_proto({**body, "member_id": member_id}, pb.AdjustBalanceRequest())
    reply = await stub(request).AdjustBalance(message, metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply.entry)


@router.get("/v1/reason-templates")
async def list_reason_templates(request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    message = from_query(request, pb.ListReasonTemplatesRequest())
    reply = await stub(request).ListReasonTemplates(message, metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply)


@router.post("/v1/reason-templates", status_code=201)
async def create_reason_template(request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    message = to_proto(request_id(request, await json_body(request)), pb.CreateReasonTemplateRequest())
    reply = await stub(request).CreateReasonTemplate(message, metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply.reason_template)


@router.get("/v1/reason-templates/{reason_template_id}")
async def get_reason_template(reason_template_id: str, request: Request,
                              caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    reply = await stub(request).GetReasonTemplate(pb.GetReasonTemplateRequest(reason_template_id=reason_template_id),
                                                  metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply.reason_template)


@router.patch("/v1/reason-templates/{reason_template_id}")
async def update_reason_template(reason_template_id: str, request: Request,
                                 caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    body = request_id(request, await json_body(request))
    message = to_proto({**body, "reason_template_id": reason_template_id}, pb.UpdateReasonTemplateRequest())
    reply = await stub(request).UpdateReasonTemplate(message, metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply.reason_template)


@router.delete("/v1/reason-templates/{reason_template_id}")
async def delete_reason_template(reason_template_id: str, request: Request,
                                 caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    key = request.headers.get("idempotency-key") or uuid.uuid4().hex
    reply = await stub(request).DeleteReasonTemplate(
        pb.DeleteReasonTemplateRequest(request_id=key, reason_template_id=reason_template_id),
        metadata=forwarded(request, caller), timeout=timeout(request))
    return to_json(reply.reason_template)
