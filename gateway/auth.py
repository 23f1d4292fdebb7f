"""Who is calling over HTTP: the access token's holder, and what a member may reach.

Access tokens are EdDSA JWTs for the audience ``crowdpack-api`` (the customer service's
SessionService issues them at sign-in; 15 minutes). The gateway verifies them with the same
public keys the services trust, and forwards the holder to the services as a fresh, short-lived
identity for ``crowdpack-services``: an access token is never accepted by a service itself.
Sign-in and refresh are open; everything else needs a token.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from gateway.bindings import Binding
from gateway.errors import HttpError
from services.common.auth import Caller, Role
from services.common.identity import IdentityError

API_AUDIENCE = "crowdpack-api"
# RPCs a person reaches before signing in: the gateway forwards them as an anonymous caller.
PUBLIC_METHODS = frozenset({
    "crowdpack.customer.v1.SessionService.CreateSession",
    "crowdpack.customer.v1.SessionService.RefreshSession",
    "crowdpack.customer.v1.SessionService.RevokeSession",
})
# Called by a mini-program's server with its channel's API key (X-Api-Key).
CHANNEL_METHODS = frozenset({"crowdpack.customer.v1.MemberCentreService.CreateMemberSession"})
# What a member's token reaches: only these, and only with its own member_id.
MEMBER_METHODS = frozenset({
    "crowdpack.customer.v1.MemberCentreService.GetMemberProfile",
    "crowdpack.customer.v1.MemberService.GetMember",
    "crowdpack.customer.v1.MemberService.CheckOrderEligibility",
    "crowdpack.ledger.v1.LedgerService.GetBalances",
    "crowdpack.ledger.v1.LedgerService.ListEntries",
})


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def channel_of(request: Request) -> str:
    """The channel whose API key the request carries (keys are configured as sha256 hex digests)."""
    key = request.headers.get("x-api-key", "")
    if key:
        digest = hashlib.sha256(key.encode()).hexdigest()
        for channel, expected in request.app.state.settings.channel_api_keys.items():
            if hmac.compare_digest(digest, expected.lower()):
                return channel
    raise HttpError(401, "UNAUTHENTICATED", "X-Api-Key: a channel API key is required", field="X-Api-Key")


async def authenticate(request: Request, binding: Binding) -> Caller:
    if binding.method.full_name in PUBLIC_METHODS:
        return Caller(staff_id="anonymous", role=Role.ANONYMOUS, address=client_address(request))
    if binding.method.full_name in CHANNEL_METHODS:
        return Caller(staff_id=f"channel:{channel_of(request)}", role=Role.CHANNEL, address=client_address(request))
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(401, "UNAUTHENTICATED", "Authorization: a 'Bearer <access token>' header is required",
                        field="Authorization")
    try:
        caller = request.app.state.access_verifier.verify(token.strip())
    except IdentityError as err:
        raise HttpError(401, "UNAUTHENTICATED", f"Authorization: {err}", field="Authorization") from None
    if caller.role in (Role.SYSTEM, Role.ANONYMOUS, Role.CHANNEL):
        raise HttpError(401, "UNAUTHENTICATED", "Authorization: not an access token", field="Authorization")
    return Caller(staff_id=caller.staff_id, role=caller.role, mall_ids=caller.mall_ids,
                  address=client_address(request))


def check_member_scope(binding: Binding, request: Request, caller: Caller) -> None:
    """A member's token reaches only the member-facing RPCs, and only its own member: 403 elsewhere."""
    if caller.role != Role.MEMBER:
        return
    if binding.method.full_name not in MEMBER_METHODS:
        raise HttpError(403, "PERMISSION_DENIED", "a member's session reaches only its own member")
    named = {request.path_params.get(p) for p, f in binding.variables.items() if f == "member_id"}
    named |= set(request.query_params.getlist("member_id"))
    if named != {caller.staff_id}:
        raise HttpError(403, "PERMISSION_DENIED", "member_id: a member's session reaches only its own member",
                        field="member_id")
