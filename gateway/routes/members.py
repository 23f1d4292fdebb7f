"""/v1/members: members (customer service) and their balances (ledger service)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request

from crowdpack.customer.v1 import member_service_pb2 as customer_pb
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from gateway.auth import authenticate, forwarded
from gateway.translate import json_body, to_json, to_proto
from services.common.auth import Caller

router = APIRouter(prefix="/v1/members", tags=["members"])


def request_id(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The Idempotency-Key header, or the body's request_id, or a fresh one for a one-off call."""
    key = request.headers.get("idempotency-key") or body.get("request_id") or uuid.uuid4().hex
    return {**body, "request_id": key}


@router.post("", status_code=201)
async def create_member(request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    body = request_id(request, await json_body(request))
    message = to_proto(body, customer_pb.CreateMemberRequest())
    clients, timeout = request.app.state.clients, request.app.state.settings.rpc_timeout_s
    reply = await clients.members.CreateMember(message, metadata=forwarded(request, caller), timeout=timeout)
    return to_json(reply.member)


@router.get("")
async def list_members(request: Request, page_size: int = 0, page_token: str = "",
                       caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    message = customer_pb.ListMembersRequest(page_size=page_size, page_token=page_token)
    clients, timeout = request.app.state.clients, request.app.state.settings.rpc_timeout_s
    reply = await clients.members.ListMembers(message, metadata=forwarded(request, caller), timeout=timeout)
    return to_json(reply)


@router.get("/{member_id}")
async def get_member(member_id: str, request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    clients, timeout = request.app.state.clients, request.app.state.settings.rpc_timeout_s
    reply = await clients.members.GetMember(customer_pb.GetMemberRequest(member_id=member_id),
                                             metadata=forwarded(request, caller), timeout=timeout)
    return to_json(reply.member)


@router.get("/{member_id}/points")
async def get_points(member_id: str, request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    clients, timeout = request.app.state.clients, request.app.state.settings.rpc_timeout_s
    reply = await clients.ledger.GetBalances(
        ledger_pb.GetBalancesRequest(member_id=member_id, asset=ledger_pb.ASSET_POINTS),
        metadata=forwarded(request, caller), timeout=timeout)
    return to_json(reply.accounts[0])
