"""Each service refuses a call whose identity is missing, forged or expired, before any handler runs."""

from __future__ import annotations

import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crowdpack.alert.v1 import alert_service_pb2 as alert_pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as alert_grpc
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from services.alert.assembly import build_spec as alert_spec
from services.alert.config import AlertSettings
from services.common.auth import Caller, Role
from services.common.identity import Signer
from services.customer.config import CustomerSettings
from services.customer.service import build_spec as customer_spec
from services.ledger.config import LedgerSettings
from services.ledger.service import build_spec as ledger_spec
from tests.support.identity import signed, signer
from tests.support.runtime import running_service

pytestmark = pytest.mark.integration

SUPER = Caller(staff_id="boss", role=Role.SUPER_ADMIN)
FORGER = Signer(Ed25519PrivateKey.generate(), issuer="gateway")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def tampered() -> tuple[tuple[str, str], ...]:
    """A real token whose claims were edited after signing (role raised): the signature no longer matches."""
    import base64
    import json

    header, payload, signature = signer().sign(Caller(staff_id="s", role=Role.SALES)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "super_admin"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return bearer(f"{header}.{edited}.{signature}")


REFUSALS = {
    "missing": (("x-other", "1"),),
    "not a bearer": (("authorization", "Basic abc"),),
    "garbage": bearer("not.a.jwt"),
    "forged key": FORGER.metadata(SUPER),
    "tampered claims": tampered(),
    "expired": bearer(signer().sign(SUPER, now=time.time() - 3600, ttl_s=60)),
}

SERVICES = {
    "customer": (customer_spec, CustomerSettings,
                 lambda ch: member_grpc.MemberServiceStub(ch).ListMembers, member_pb.ListMembersRequest()),
    "ledger": (ledger_spec, LedgerSettings,
               lambda ch: ledger_grpc.LedgerServiceStub(ch).ListReasonTemplates, ledger_pb.ListReasonTemplatesRequest()),
    "alert": (alert_spec, AlertSettings,
              lambda ch: alert_grpc.AlertServiceStub(ch).ListWhitelistEntries, alert_pb.ListWhitelistEntriesRequest()),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_each_service_refuses_unverified_identities(service, database_url, nats_url, tmp_path):
    build, settings_type, method_of, request = SERVICES[service]
    settings = settings_type(grpc_port=0, metrics_port=0, database_url=database_url)
    async with running_service(build, settings, nats_url=nats_url, state_dir=tmp_path) as (runtime, _):
        # A plain channel: no default identity is added.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
            method = method_of(channel)
            for name, metadata in REFUSALS.items():
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await method(request, metadata=metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            await method(request, metadata=signed(SUPER))  # the same call, properly signed, is served
            # Probes need no identity.
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
