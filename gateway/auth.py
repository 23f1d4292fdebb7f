"""Authentication: a bearer token names a principal, forwarded to the services as metadata."""

from __future__ import annotations

import hmac

from fastapi import Request

from gateway.errors import HttpError
from services.common.auth import Caller


def authenticate(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HttpError(401, "UNAUTHENTICATED", "Authorization: a 'Bearer <token>' header is required",
                        field="Authorization")
    tokens = request.app.state.settings.api_tokens
    for known, principal in tokens.items():
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            return Caller(staff_id=principal.staff_id, role=principal.role, mall_ids=frozenset(principal.mall_ids))
    raise HttpError(401, "UNAUTHENTICATED", "Authorization: the token is not valid", field="Authorization")


def forwarded(request: Request, caller: Caller) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata carrying ``caller`` as an identity the services verify (signed, short-lived)."""
    return request.app.state.signer.metadata(caller)
