"""Shared fixtures: a real NATS server, fresh databases on SQLite and PostgreSQL, running services.

Expensive real parts are shared, cheap isolation is per test:
- one nats-server per session (per xdist worker); each test connects as the only user of an
  account of its own, so its streams and consumers are its own;
- one migrated template database per service and backend; each test gets a copy;
- every server binds port 0.

Each test is marked after its folder (unit, integration, e2e, chaos, browser), which is what
``make test`` selects on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from services.supervisor import SERVICES, Ports, System
from tests.support.databases import POSTGRES_ENV, Databases, postgres_admin_url
from tests.support.identity import use_test_keys
from tests.support.nats import NatsServer, delete_streams

# Every service a test starts trusts the test key; tests sign their calls with tests.support.identity.signed.
use_test_keys()

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
FOLDER_MARKERS = ("unit", "integration", "e2e", "chaos", "browser")
NATS_ACCOUNTS = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    # How many tests of this run want a NATS account: the session server declares that many at start.
    session.config.stash[NATS_ACCOUNTS] = sum("nats_url" in getattr(i, "fixturenames", ()) for i in session.items)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not postgres_admin_url():
        pytest.skip(f"{POSTGRES_ENV} is not set (.ci/run sets it)")
    return request.param


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """This session's databases: each service's migrated template, and the copies tests get."""
    pool = Databases(tmp_path_factory.mktemp("templates"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, databases: Databases, tmp_path: Path) -> Iterator[str]:
    """The test's own database on ``backend``.

    A test (or its module, through ``pytestmark``) marked ``@pytest.mark.database("ledger")``
    gets a copy of the ledger's migrated template; otherwise the database is empty, and
    whatever uses it migrates it.
    """
    marker = request.node.get_closest_marker("database")
    service = marker.args[0] if marker else None
    with databases.fresh(backend, tmp_path, service=service) as url:
        yield url


@pytest.fixture(scope="session")
def nats_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """The session's nats-server with JetStream (one per xdist worker), on a port it picked."""
    # Enough accounts for every test of the run (a worker does not know which it will get); more on demand.
    server = NatsServer(tmp_path_factory.mktemp("nats"), accounts=request.config.stash.get(NATS_ACCOUNTS, 0) + 8)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> Iterator[str]:
    """A URL to the session's NATS server, as the only user of a JetStream account of this test's own."""
    url = nats_server.new_account()
    yield url
    asyncio.run(delete_streams(url))


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    from services.common import bus

    nc, jetstream = await bus.connect(nats_url, "tests")
    try:
        yield jetstream
    finally:
        await nc.close()


@pytest.fixture
def system(backend: str, databases: Databases, tmp_path: Path) -> Iterator[System]:
    """The whole system as OS processes (NATS, three services, gateway) on free loopback ports.

    Each service gets a fresh copy of its migrated template (on SQLite, in the state folder).
    """
    from contextlib import ExitStack

    state = tmp_path / "state"
    state.mkdir()
    with ExitStack() as stack:
        urls = {n: stack.enter_context(databases.fresh(backend, state, n, service=n)) for n in SERVICES}
        sys_ = System(state_dir=state, ports=Ports.free(), database_urls=urls,
                      env={"CROWDPACK_CUSTOMER_OUTBOX_POLL_S": "0.1", "CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.1"})
        stack.callback(sys_.stop)
        sys_.start()
        yield sys_


BROWSERS_SKIPPED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    config.stash[BROWSERS_SKIPPED] = sum("browser" in r.keywords for r in terminalreporter.stats.get("skipped", []))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's last line says so when the console's browser tests could not run (no chromium here)."""
    from tests.browser.conftest import CHROMIUM

    skipped = config.stash.get(BROWSERS_SKIPPED, 0)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if skipped and not CHROMIUM.exists() and reporter is not None:
        reporter.write_line(f"BROWSER TESTS NOT RUN: {skipped} console tests skipped, {CHROMIUM} is missing "
                            "(apt-get install chromium fonts-wqy-microhei)", yellow=True, bold=True)
