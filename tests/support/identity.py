"""Signed identities for tests that call the services directly over gRPC.

One Ed25519 key pair per test process. ``use_test_keys()`` puts it in the environment, so every
service a test starts (in-process or as an OS process) trusts it. ``signed(Caller(...))`` is the
metadata of a call made as that caller; channels from ``channel(...)`` (and the ones
``running_service`` returns) carry a SYSTEM identity when a call passes none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.auth import Caller, Role
from services.common.identity import METADATA_KEY, Signer, private_pem, public_pem

SYSTEM = Caller(staff_id="tests", role=Role.SYSTEM)


@cache
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate(), issuer="tests", ttl_s=3600)


def identity_env() -> dict[str, str]:
    """The environment that makes a Crowdpack process trust (and sign with) the test key."""
    private = signer().private
    return {"CROWDPACK_IDENTITY_PRIVATE_KEY": private_pem(private),
            "CROWDPACK_IDENTITY_PUBLIC_KEYS": public_pem(private.public_key())}


def use_test_keys() -> None:
    os.environ.update(identity_env())


def signed(caller: Caller = SYSTEM, *, ttl_s: float | None = None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata proving the call comes from ``caller``."""
    return signer().metadata(caller, ttl_s=ttl_s)


def _with_default(metadata: Any) -> Any:
    pairs: Sequence[tuple[str, str]] = tuple(metadata or ())
    if any(key == METADATA_KEY for key, _ in pairs):
        return metadata
    return grpc.aio.Metadata(*pairs, *signed())


class _DefaultIdentity(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,
                       grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    async def _call(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        details = grpc.aio.ClientCallDetails(details.method, details.timeout, _with_default(details.metadata),
                                             details.credentials, details.wait_for_ready)
        return await continuation(details, request)

    intercept_unary_unary = intercept_unary_stream = _call  # type: ignore[assignment]
    intercept_stream_unary = intercept_stream_stream = _call  # type: ignore[assignment]


def channel(address: str, **kwargs: Any) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` whose calls carry a SYSTEM identity unless they pass their own."""
    return grpc.aio.insecure_channel(address, interceptors=[_DefaultIdentity()], **kwargs)


class _SyncDefaultIdentity(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                           grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        pairs = tuple(details.metadata or ())
        if not any(key == METADATA_KEY for key, _ in pairs):
            details = details._replace(metadata=(*pairs, *signed())) if hasattr(details, "_replace") else \
                _Details(details.method, details.timeout, (*pairs, *signed()), details.credentials,
                         details.wait_for_ready, details.compression)
        return continuation(details, request)

    intercept_unary_unary = intercept_unary_stream = _call  # type: ignore[assignment]
    intercept_stream_unary = intercept_stream_stream = _call  # type: ignore[assignment]


class _Details(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: Any, metadata: Any, credentials: Any, wait_for_ready: Any,
                 compression: Any) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def sync_channel(address: str) -> grpc.Channel:
    """A blocking channel to ``address`` whose calls carry a SYSTEM identity unless they pass their own."""
    return grpc.intercept_channel(grpc.insecure_channel(address), _SyncDefaultIdentity())


def access_headers(caller: Caller, ttl_s: float = 900) -> dict[str, str]:
    """HTTP headers carrying an API access token for ``caller`` (as SessionService issues at sign-in)."""
    token = Signer(signer().private, issuer="tests", ttl_s=ttl_s, audience="crowdpack-api").sign(caller)
    return {"Authorization": f"Bearer {token}"}
