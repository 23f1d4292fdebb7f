"""What every benchmark script shares: progress lines, the machine's name, the plain-SQL baselines' database, and
the do-nothing twin of a consumer."""

from __future__ import annotations

import asyncio
import platform
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.common.consumer import EventConsumer
from services.common.db import Database
from tests.support.identity import use_test_keys

use_test_keys()  # every service a benchmark starts trusts the test key its calls are signed with

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite


def log(msg: str) -> None:
    """A timestamped progress line on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")),
                "unknown")


THREAD_ROLES = ("writer", "loop", "other")  # the kinds of thread ``cpu_by_role`` tells apart


def thread_cpu() -> dict[int, tuple[str, float]]:
    """Each live thread of this process (by ident): its name and the CPU seconds it has used so far."""
    return {t.ident: (t.name, time.clock_gettime(time.pthread_getcpuclockid(t.ident)))
            for t in threading.enumerate() if t.ident is not None and t.is_alive()}


def cpu_by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """The CPU seconds each kind of thread used between two ``thread_cpu`` snapshots: ``writer`` (the database's
    writer threads: ``sqlite-writer_N``), ``loop`` (the main thread, which runs the event loop) and ``other``
    (readers, the checkpoint thread, ...). A thread started in between counts from zero; one that ended in
    between is not counted (a service's threads live through a phase)."""
    roles = dict.fromkeys(THREAD_ROLES, 0.0)
    for ident, (name, seconds) in after.items():
        role = "writer" if name.startswith("sqlite-writer") else "loop" if name == "MainThread" else "other"
        roles[role] += seconds - before.get(ident, (name, 0.0))[1]
    return roles


def plain_sqlite(path: Path, migrations_dir: Path) -> sqlite3.Connection:
    """What a plain-SQL baseline writes to: a fresh SQLite database at ``path`` with a service's schema
    (its migrations: the same indexes and constraints), opened by plain sqlite3 in autocommit mode with
    the durability the services use (WAL, ``synchronous=FULL``, as ``services.common.db`` sets them)."""
    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}", migrations_dir)
        await db.migrate()
        await db.dispose()

    asyncio.run(migrate())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def do_nothing_twin(consumer: EventConsumer, durable: str = "bench-noop") -> EventConsumer:
    """The baseline a consumer's handlers are measured against: the same shared consumer (stream, subjects, dedupe
    table, batch size and mode: a sync batch handler's one hop to the writer, say) on a durable of its own, with
    handlers that do nothing."""
    async def nothing(_session: object, _event: object) -> None:
        return None

    async def nothing_batch(_session: object, _items: object) -> None:
        return None

    return EventConsumer(consumer.db, consumer.js, durable=durable, stream=consumer.stream,
                         handlers=dict.fromkeys(consumer.handlers, nothing), model=consumer.model,
                         max_deliver=consumer.max_deliver, batch=consumer.batch, batched=consumer.batched,
                         batch_handler=nothing_batch if consumer.batch_handler else None,
                         sync_batch_handler=(lambda _session, _items: None) if consumer.sync_batch_handler else None)
