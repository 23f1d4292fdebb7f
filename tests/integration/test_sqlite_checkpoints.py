"""SQLite's log is copied back into the database file by the checkpoint thread, beside the writer
(services/common/checkpoints.py), and the thread ends with the database."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.bulk import insert_rows
from services.common.checkpoints import SAFETY_PAGES
from services.common.db import Database, _open_count
from services.ledger.models import Account

MIGRATIONS = Path("services/ledger/migrations")
ACCOUNTS = Account.__table__
OPENED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


def add_accounts(session: Session, first: int, n: int) -> None:
    insert_rows(session.connection(), ACCOUNTS, ("member_id", "asset", "balance", "debt", "opened_at"),
                [(str(i), pb.ASSET_BALANCE, i, 0, OPENED) for i in range(first, first + n)])


def in_database_file(path: Path) -> int:
    """The accounts the database file itself holds: the log left out (``immutable`` reads the file alone, without
    locks). A read while the checkpoint thread is writing the file may find it half written: -1, asked again."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as conn:
            return int(conn.execute("SELECT count(*) FROM account").fetchone()[0])
    except sqlite3.DatabaseError:
        return -1


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_commits_reach_the_database_file_without_the_writer_checkpointing(tmp_path):
    path = tmp_path / "ledger.db"
    db = Database(f"sqlite+aiosqlite:///{path}", MIGRATIONS)
    try:
        await db.migrate()
        assert db.checkpointer is not None
        with sqlite3.connect(path) as conn:  # the migration's pages too, so the file starts whole
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        assert in_database_file(path) == 0
        # Far fewer pages than the writer's own checkpoint mark: only the thread can have copied them.
        for part in range(5):
            await db.run_sync_write(lambda s, part=part: add_accounts(s, part * 400, 400))
        wal_pages = (path.with_name(path.name + "-wal").stat().st_size // 4096)
        assert 0 < wal_pages < SAFETY_PAGES
        await until(lambda: in_database_file(path) == 2_000, "the checkpoint thread to copy the commits")
        assert db.checkpointer.passes >= 1
        # A commit after that is copied as well, and the writer's commits all stay readable meanwhile.
        await db.run_sync_write(lambda s: add_accounts(s, 2_000, 1))
        await until(lambda: in_database_file(path) == 2_001, "the next commit's checkpoint")
    finally:
        await db.dispose()


async def test_dispose_ends_the_checkpoint_thread_and_closes_its_connection(tmp_path):
    path = tmp_path / "ledger.db"
    db = Database(f"sqlite+aiosqlite:///{path}", MIGRATIONS)
    await db.migrate()
    await db.run_sync_write(lambda s: add_accounts(s, 0, 10))
    checkpointer = db.checkpointer
    assert checkpointer is not None and checkpointer._thread is not None
    await db.dispose()
    assert not checkpointer._thread.is_alive()
    assert _open_count(os.getpid(), str(path.resolve())) == 0
    checkpointer.wake()  # a late commit callback starts nothing once closed
    assert not checkpointer._thread.is_alive()
