"""Services running in-process on the session's NATS server (an account per test) and the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from crowdpack.ledger.v1 import ledger_service_pb2_grpc
from services.customer.config import CustomerSettings
from services.customer.service import build_spec as customer_spec
from services.ledger.config import LedgerSettings
from services.ledger.service import build_spec as ledger_spec
from tests.support.customer import CustomerStubs
from tests.support.ledger import Ledger
from tests.support.runtime import running_service


@pytest.fixture
async def customer(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[CustomerStubs]:
    """The customer service, with a stub per gRPC service (exports capped at 5 rows)."""
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05,
                                export_max_rows=5)
    async with running_service(customer_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        assert rt.ctx is not None
        yield CustomerStubs.on(channel, rt.ctx.db)


@pytest.fixture
async def ledger(database_url: str, nats_url: str, js: JetStreamContext, tmp_path: Path) -> AsyncIterator[Ledger]:
    """The ledger service, and a JetStream client to announce customer events to it."""
    settings = LedgerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(ledger_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (runtime, channel):
        yield Ledger(runtime, ledger_service_pb2_grpc.LedgerServiceStub(channel), js)
