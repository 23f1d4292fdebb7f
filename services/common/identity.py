"""Signed identities: who a gRPC call comes from, as an EdDSA (Ed25519) JWT in its metadata.

The gateway signs the identity of the person it authenticated (staff id, role, malls; or a
member); a service calling another signs its own service identity the same way. Every service
verifies the signature and the expiry in ONE place (``AuthInterceptor``) before any handler
runs; a call with no identity, a bad signature or an expired token is UNAUTHENTICATED. Handlers
read the verified caller with ``caller_of(context)`` (services/common/auth.py).

Keys: one Ed25519 private key signs (held by the gateway, the services and the operator's CLI);
its public key verifies. More public keys may be trusted at once, each named by its ``kid`` (a
thumbprint), so a key can be rotated without a pause. They come from configuration
(``CROWDPACK_IDENTITY_*``, in Kubernetes a Secret); ``make run`` generates development keys into
``<state_dir>/keys/`` on its first start.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.common.auth import Caller, Role
from services.common.config import CommonSettings
from services.common.errors import status_with_reason

METADATA_KEY = "authorization"
AUDIENCE = "crowdpack-services"
ALGORITHM = "EdDSA"
# Methods any caller may reach without an identity: probes and service discovery.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# What the restricted roles reach: someone not signed in (Role.ANONYMOUS) only signing in; a mini-program's
# server (Role.CHANNEL) only exchanging a channel identity for a member session.
RESTRICTED_METHODS = {
    Role.ANONYMOUS: frozenset({"/crowdpack.customer.v1.SessionService/CreateSession",
                               "/crowdpack.customer.v1.SessionService/RefreshSession",
                               "/crowdpack.customer.v1.SessionService/RevokeSession"}),
    Role.CHANNEL: frozenset({"/crowdpack.customer.v1.MemberCentreService/CreateMemberSession"}),
}
PRIVATE_KEY_FILE = "identity_ed25519.pem"
PUBLIC_KEY_FILE = "identity_ed25519.pub.pem"

CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("crowdpack_caller")


class IdentityError(Exception):
    """A token that does not prove who is calling (the reason is safe to show)."""


def kid_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:9]).decode()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(private: Ed25519PrivateKey) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def load_private(pem: str | bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the identity private key must be an Ed25519 key")
    return key


def load_publics(pem: str | bytes) -> list[Ed25519PublicKey]:
    """Every public key in ``pem`` (several PEM blocks may follow each other)."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    keys = []
    for block in text.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key((block.strip() + "\n-----END PUBLIC KEY-----\n").encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("identity public keys must be Ed25519 keys")
        keys.append(key)
    if not keys:
        raise ValueError("no PEM public key found")
    return keys


def generate_dev_keys(folder: Path) -> tuple[Path, Path]:
    """A development key pair in ``folder`` (kept if already there); returns (private, public) paths."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    if not private_path.exists():
        private = Ed25519PrivateKey.generate()
        tmp = private_path.with_suffix(".tmp")
        tmp.write_text(private_pem(private))
        tmp.chmod(0o600)
        tmp.replace(private_path)
    if not public_path.exists():
        public_path.write_text(public_pem(load_private(private_path.read_bytes()).public_key()))
    return private_path, public_path


@dataclass(frozen=True)
class Signer:
    """Signs identities with the private key; ``ttl_s`` bounds how long a signed identity lives."""

    private: Ed25519PrivateKey
    issuer: str
    ttl_s: float = 60.0
    audience: str = AUDIENCE

    @property
    def kid(self) -> str:
        return kid_of(self.private.public_key())

    def sign(self, caller: Caller, *, ttl_s: float | None = None, now: float | None = None,
             extra: dict[str, Any] | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.audience, "sub": caller.staff_id, "role": caller.role.value,
            "malls": sorted(caller.mall_ids), "iat": issued, "exp": issued + int(ttl_s or self.ttl_s),
        }
        if caller.address:
            claims["addr"] = caller.address
        claims.update(extra or {})
        return jwt.encode(claims, self.private, algorithm=ALGORITHM, headers={"kid": self.kid})

    def metadata(self, caller: Caller, *, ttl_s: float | None = None) -> tuple[tuple[str, str], ...]:
        return ((METADATA_KEY, f"Bearer {self.sign(caller, ttl_s=ttl_s)}"),)


class CachingSigner:
    """Reuses a signed identity for half its life: a busy caller signs once per principal, not per call,
    and the services' verifier cache then sees the same token again."""

    def __init__(self, signer: Signer, size: int = 4096) -> None:
        self.signer = signer
        self._size = size
        self._tokens: OrderedDict[Caller, tuple[str, float]] = OrderedDict()

    def metadata(self, caller: Caller) -> tuple[tuple[str, str], ...]:
        now = time.time()
        hit = self._tokens.get(caller)
        if hit is None or hit[1] <= now:
            token = self.signer.sign(caller, now=now)
            hit = (f"Bearer {token}", now + self.signer.ttl_s / 2)
            self._tokens[caller] = hit
            if len(self._tokens) > self._size:
                self._tokens.popitem(last=False)
        return ((METADATA_KEY, hit[0]),)


class Verifier:
    """Checks a token's signature (against the trusted public keys), audience and expiry."""

    def __init__(self, publics: list[Ed25519PublicKey], *, leeway_s: float = 5.0, cache_size: int = 8192,
                 audience: str = AUDIENCE) -> None:
        if not publics:
            raise ValueError("at least one identity public key is required")
        self.audience = audience
        self._keys = {kid_of(k): k for k in publics}
        self._leeway = leeway_s
        self._size = cache_size
        self._cache: OrderedDict[str, tuple[Caller, float]] = OrderedDict()

    def verify(self, token: str) -> Caller:
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and hit[1] + self._leeway > now:
            return hit[0]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise IdentityError("the identity token is malformed") from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise IdentityError("the identity token is signed by an unknown key")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=self.audience, leeway=self._leeway,
                                options={"require": ["exp", "iat", "sub", "aud"]})
        except jwt.ExpiredSignatureError:
            raise IdentityError("the identity token has expired") from None
        except jwt.PyJWTError as err:
            raise IdentityError(f"the identity token is not valid ({err})") from None
        try:
            role = Role(claims.get("role", ""))  # a missing role is no role: ValueError, as any unknown one
            malls = frozenset(str(m) for m in claims.get("malls", ()))
        except (ValueError, TypeError):
            raise IdentityError("the identity token names an unknown role") from None
        caller = Caller(staff_id=str(claims["sub"]), role=role, mall_ids=malls, address=str(claims.get("addr", "")))
        self._cache[token] = (caller, float(claims["exp"]))
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return caller


def token_of(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == METADATA_KEY:
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Verifies the caller's signed identity before any handler runs; the handler reads it with ``caller_of``."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    def _caller(self, context: grpc.aio.ServicerContext, method: str) -> Caller | str:
        token = token_of(context.invocation_metadata())
        if token is None:
            return "a signed identity is required ('authorization: Bearer <token>' metadata)"
        try:
            caller = self.verifier.verify(token)
        except IdentityError as err:
            return str(err)
        allowed = RESTRICTED_METHODS.get(caller.role)
        if allowed is not None and method not in allowed:
            return "sign in first: this call needs a signed-in identity"
        return caller

    # Left unannotated: grpc's stubs type a handler's behaviours as plain callables, and under grpc.aio
    # they are coroutine functions and async generators (as ``inner`` and ``streaming`` say).
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        if handler.unary_unary is not None or handler.stream_unary is not None:
            inner: Callable[..., Awaitable[Any]] = handler.unary_unary or handler.stream_unary

            async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
                caller = self._caller(context, handler_call_details.method)
                if isinstance(caller, str):
                    await context.abort_with_status(status_with_reason(grpc.StatusCode.UNAUTHENTICATED, caller,
                                                                       "IDENTITY_INVALID"))
                CALLER.set(caller)
                return await inner(request, context)

            make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary is not None
                    else grpc.stream_unary_rpc_method_handler)
            return make(checked, request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
        streaming: Callable[..., AsyncIterator[Any]] = handler.unary_stream or handler.stream_stream

        async def checked_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            caller = self._caller(context, handler_call_details.method)
            if isinstance(caller, str):
                await context.abort_with_status(status_with_reason(grpc.StatusCode.UNAUTHENTICATED, caller,
                                                                   "IDENTITY_INVALID"))
            CALLER.set(caller)
            async for reply in streaming(request, context):
                yield reply

        make_stream = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
                       else grpc.stream_stream_rpc_method_handler)
        return make_stream(checked_stream, request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)


def _keys_dir(common: CommonSettings) -> Path:
    return common.state_dir / "keys"


def verifier_from(common: CommonSettings, audience: str = AUDIENCE) -> Verifier:
    """The verifier of the configured public keys; a clear error names the setting when none is found."""
    if common.identity_public_keys.strip():
        return Verifier(load_publics(common.identity_public_keys), audience=audience)
    path = common.identity_public_key_file or _keys_dir(common) / PUBLIC_KEY_FILE
    if not path.is_file():
        raise RuntimeError(f"CROWDPACK_IDENTITY_PUBLIC_KEYS: not set and {path} does not exist "
                           "(make run generates development keys; production mounts them from a Secret)")
    return Verifier(load_publics(path.read_bytes()), audience=audience)


def signer_from(common: CommonSettings, issuer: str, ttl_s: float = 60.0, audience: str = AUDIENCE) -> Signer:
    """The signer of the configured private key, issuing as ``issuer`` for ``audience``."""
    if common.identity_private_key.strip():
        return Signer(load_private(common.identity_private_key), issuer, ttl_s, audience)
    path = common.identity_private_key_file or _keys_dir(common) / PRIVATE_KEY_FILE
    if not path.is_file():
        raise RuntimeError(f"CROWDPACK_IDENTITY_PRIVATE_KEY: not set and {path} does not exist "
                           "(make run generates development keys; production mounts them from a Secret)")
    return Signer(load_private(path.read_bytes()), issuer, ttl_s, audience)
