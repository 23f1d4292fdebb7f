"""A service starting on a SQLite file whose write lock someone else holds: it says who, and gives up in time."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from services.common.db import Database, WriteLockHeld
from tests.support.databases import Databases

MIGRATIONS = Path("services/ledger/migrations")


@pytest.fixture
def database_url(databases: Databases, tmp_path: Path) -> Iterator[str]:
    """A migrated ledger database on SQLite (the write lock in question is SQLite's)."""
    with databases.fresh("sqlite", tmp_path, service="ledger") as url:
        yield url


def sqlite_path(database_url: str) -> str:
    path = make_url(database_url).database
    assert path
    return path


async def test_a_write_lock_held_elsewhere_is_named_and_waited_for_a_bounded_time(database_url):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.read()", sqlite_path(database_url)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        db = Database(database_url, MIGRATIONS, busy_timeout_s=0.1)
        try:
            with pytest.raises(WriteLockHeld) as info:
                await db.connect(max_delay_s=0.05, lock_wait_s=0.5)
        finally:
            await db.dispose()
        message = str(info.value)
        assert message.startswith("gave up after 0 s: the SQLite write lock on ")
        assert f"pid {holder.pid} ({sys.executable} -c import sqlite3" in message
    finally:
        holder.communicate("")
    # Released: the next start migrates at once.
    db = Database(database_url, MIGRATIONS, busy_timeout_s=0.1)
    try:
        await db.connect(max_delay_s=0.05, lock_wait_s=0.5)
    finally:
        await db.dispose()


async def test_a_write_lock_left_in_this_process_is_named_too(database_url):
    left = sqlite3.connect(sqlite_path(database_url), isolation_level=None)
    left.execute("BEGIN IMMEDIATE")
    db = Database(database_url, MIGRATIONS, busy_timeout_s=0.1)
    try:
        with pytest.raises(WriteLockHeld, match=r"this process \(pid \d+\): 1 other connection"):
            await db.connect(max_delay_s=0.05, lock_wait_s=0.3)
    finally:
        await db.dispose()
        left.close()
