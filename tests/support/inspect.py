"""Read-only looks into a service's database and the JetStream streams, for assertions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.supervisor import System
from tests.support import waiting


def database_url(system: System, service: str) -> str:
    url = system.database_urls.get(service) or f"sqlite+aiosqlite:///{system.state_dir / (service + '.db')}"
    parsed = make_url(url)
    sync_driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=sync_driver).render_as_string(hide_password=False)


def scalar(system: System, service: str, sql: str) -> int:
    engine = create_engine(database_url(system, service))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def stream_messages(system: System, stream: str) -> int:
    async def count() -> int:
        nc = await nats.connect(system.nats_url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        finally:
            await nc.close()

    return asyncio.run(count())


def caught_up(system: System, stream: str, durable: str, timeout: float = 10.0) -> None:
    """Returns once the durable consumer has acked every message of ``stream`` (tests.support.waiting.caught_up)."""

    async def wait() -> None:
        nc = await nats.connect(system.nats_url)
        try:
            await waiting.caught_up(nc.jetstream(), stream, durable, timeout)
        finally:
            await nc.close()

    asyncio.run(wait())


def log_text(system: System, service: str) -> str:
    return Path(system.processes[service].log_path).read_text(errors="replace")
