"""Shared fixtures: a real NATS server, fresh databases on SQLite and PostgreSQL, running services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.supervisor import Ports, System
from tests.support.databases import POSTGRES_ENV, fresh_database, postgres_admin_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not postgres_admin_url():
        pytest.skip(f"{POSTGRES_ENV} is not set (.ci/run sets it)")
    return request.param


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A real nats-server with JetStream, on a free loopback port, data in a temp folder."""
    system = System(state_dir=tmp_path / "nats-state", ports=Ports.free())
    system.start(("nats",))
    try:
        yield system.nats_url
    finally:
        system.processes["nats"].stop()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator:
    from services.common import bus

    nc, jetstream = await bus.connect(nats_url, "tests")
    try:
        yield jetstream
    finally:
        await nc.close()


@pytest.fixture
def system(backend: str, tmp_path: Path) -> Iterator[System]:
    """The whole system as OS processes (NATS, three services, gateway) on free loopback ports.

    On the postgres backend each service gets its own fresh PostgreSQL database.
    """
    from contextlib import ExitStack

    with ExitStack() as stack:
        urls = {}
        if backend == "postgres":
            urls = {n: stack.enter_context(fresh_database("postgres", tmp_path, n))
                    for n in ("customer", "ledger", "alert")}
        sys_ = System(state_dir=tmp_path / "state", ports=Ports.free(), database_urls=urls,
                      env={"CROWDPACK_CUSTOMER_OUTBOX_POLL_S": "0.1", "CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.1"})
        stack.callback(sys_.stop)
        sys_.start()
        yield sys_
