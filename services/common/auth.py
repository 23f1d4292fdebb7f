"""Who is calling: the verified identity of a gRPC call, and the roles there are.

Every call carries a signed identity (services/common/identity.py); ``AuthInterceptor``
verifies it before the handler runs and handlers read it here with ``caller_of``. There is no
unauthenticated "system" caller: a service or a tool acting for itself signs a ``SYSTEM``
identity naming itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import grpc

from services.common.errors import Unauthenticated


class Role(StrEnum):
    SYSTEM = "system"
    SUPER_ADMIN = "super_admin"
    MALL_ADMIN = "mall_admin"
    SALES = "sales"
    MEMBER = "member"
    # Someone who has not signed in yet: the gateway forwards sign-in and refresh calls as this.
    ANONYMOUS = "anonymous"
    # A mini-program's server, authenticated by its channel's API key (staff_id "channel:<name>").
    CHANNEL = "channel"


@dataclass(frozen=True)
class Caller:
    staff_id: str = "system"
    role: Role = Role.SYSTEM
    # For Role.MEMBER, staff_id is the member's id: a member caller is that one member.
    mall_ids: frozenset[str] = field(default_factory=frozenset)
    # The network address the person called from, as the gateway saw it (sign-in rate limits use it).
    address: str = ""


def caller_of(_context: grpc.aio.ServicerContext | None = None) -> Caller:
    """The caller ``AuthInterceptor`` verified for the RPC under way."""
    from services.common.identity import CALLER

    caller = CALLER.get(None)
    if caller is None:
        raise Unauthenticated("no verified identity for this call")
    return caller
