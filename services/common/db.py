"""The database: SQLAlchemy 2.x async engines, sessions and Alembic migrations.

SQLite (WAL) is the embedded default; a ``postgresql+psycopg://`` URL selects PostgreSQL.
On SQLite, writes go through one connection that begins with ``BEGIN IMMEDIATE`` so
writers queue in the event loop instead of failing with "database is locked"; reads use a
small pool of their own and see the last commit (WAL). On PostgreSQL both are one pool; a read
transaction is REPEATABLE READ and read-only, so all its statements see one snapshot.

``run_sync_write`` runs a synchronous function in one write transaction with a single hop: on
SQLite, on the writer thread with the synchronous driver (aiosqlite would cross threads three or
four times per statement); on PostgreSQL through ``AsyncSession.run_sync``. Writers of both
kinds queue for the same slot, so SQLite still has one writer at a time. Bulk rows go through
``services.common.bulk``. ``run_sync_read`` is its counterpart for hot reads: a synchronous function in one
read transaction, on SQLite on a reader thread in one hop (a read of five statements otherwise crosses
threads some twenty-five times, most of the CPU a member read costs). On a SQLite file, the log is checkpointed
on a thread of its own, beside the writer (``services.common.checkpoints``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from services.common import checkpoints
from services.common.logs import get_logger
from services.common.retry import retry_forever

log = get_logger(__name__)

T = TypeVar("T")


BUSY_TIMEOUT_S = 10.0
# SQLite: the reader connections (and, for run_sync_read, reader threads) a process keeps.
READERS = 4


class WriteLockHeld(RuntimeError):
    """SQLite's write lock stayed with another connection for longer than the start-up allows."""


def _sqlite_engine(url: str, *, begin: str, pool_size: int, busy_timeout_s: float,
                   checkpointed: bool) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)
    _sqlite_setup(engine.sync_engine, begin, busy_timeout_s, checkpointed)
    return engine


def _sqlite_sync_engine(url: str, *, begin: str, busy_timeout_s: float, checkpointed: bool,
                        pool_size: int = 1) -> Engine:
    """The synchronous driver on the same file, for ``run_sync_write`` (used from its writer thread only) and
    ``run_sync_read`` (from its reader threads, a connection each at a time)."""
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(sync_url, pool_size=pool_size, max_overflow=0, pool_timeout=60,
                           connect_args={"check_same_thread": False})
    _sqlite_setup(engine, begin, busy_timeout_s, checkpointed)
    return engine


def _sqlite_setup(engine: Engine, begin: str, busy_timeout_s: float, checkpointed: bool) -> None:
    """Every connection: WAL, full sync, foreign keys, the busy timeout; with ``checkpointed`` (a ``Checkpointer``
    thread copies the log back), the connection's own checkpoint only as a safety net."""
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        if checkpointed:
            cur.execute(f"PRAGMA wal_autocheckpoint={checkpoints.SAFETY_PAGES}")
            cur.execute(f"PRAGMA journal_size_limit={checkpoints.LOG_LIMIT_BYTES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql(begin)


def dialect_of(session: AsyncSession) -> str:
    """The dialect name ("sqlite" or "postgresql") of the database ``session`` is bound to (every
    ``Database`` session is)."""
    if session.bind is None:
        raise RuntimeError("the session is not bound to a database")
    return session.bind.dialect.name


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. Its result is a ``CursorResult``; ``Session.execute`` is
    typed for any statement."""
    return cast(CursorResult[Any], result).rowcount


class Database:
    """One service's database: a writer, a reader, and the migrations that shape it."""

    def __init__(self, url: str, migrations_dir: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.url = url
        self.migrations_dir = migrations_dir
        self.dialect = make_url(url).get_backend_name()
        self.sqlite_path: Path | None = None
        # SQLite on a file: the thread that checkpoints the log beside the writer (woken by every commit).
        self.checkpointer: checkpoints.Checkpointer | None = None
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:":
                self.sqlite_path = Path(path).resolve()
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                self.checkpointer = checkpoints.Checkpointer(self.sqlite_path, busy_timeout_s=busy_timeout_s)
            on = self.checkpointer is not None
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1, busy_timeout_s=busy_timeout_s,
                                               checkpointed=on)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=READERS, busy_timeout_s=busy_timeout_s,
                                              checkpointed=on)
            self._sync_write_engine: Engine | None = _sqlite_sync_engine(url, begin="BEGIN IMMEDIATE",
                                                                         busy_timeout_s=busy_timeout_s, checkpointed=on)
            self._sync_read_engine: Engine | None = _sqlite_sync_engine(url, begin="BEGIN", pool_size=READERS,
                                                                        busy_timeout_s=busy_timeout_s, checkpointed=on)
        else:
            self.write_engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            # Reads share the pool, each in one snapshot: a read of several statements (a member and their
            # stats row) never sees half of a transaction that committed between them.
            self.read_engine = self.write_engine.execution_options(isolation_level="REPEATABLE READ",
                                                                   postgresql_readonly=True)
            self._sync_write_engine = None
            self._sync_read_engine = None
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._after_commit: list[Callable[[], None]] = []
        if self.checkpointer is not None:
            self._after_commit.append(self.checkpointer.wake)
        # SQLite: the one writer slot both kinds of write transaction queue for (made per event loop),
        # and the thread run_sync_write's transactions run on.
        self._slot: asyncio.Lock | None = None
        self._slot_loop: asyncio.AbstractEventLoop | None = None
        self._writer_thread: ThreadPoolExecutor | None = None
        self._reader_threads: ThreadPoolExecutor | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` after every committed write transaction (the outbox relay's wake-up)."""
        self._after_commit.append(callback)

    def _committed(self) -> None:
        for callback in self._after_commit:
            callback()

    def _slot_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._slot is None or self._slot_loop is not loop:
            self._slot, self._slot_loop = asyncio.Lock(), loop
        return self._slot

    async def _write_slot_acquire(self) -> None:
        await self._slot_lock().acquire()

    def _write_slot_release(self) -> None:
        assert self._slot is not None
        self._slot.release()

    @asynccontextmanager
    async def _write_slot(self) -> AsyncIterator[None]:
        """On SQLite, waits (in the event loop) until no other write transaction of this process is open."""
        if not self.is_sqlite:
            yield
            return
        async with self._slot_lock():
            yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._write_slot(), self._writer() as session, session.begin():
            yield session
        self._committed()

    async def run_sync_write(self, fn: Callable[[Session], T]) -> T:
        """Runs ``fn(session)`` in one write transaction: committed when it returns, rolled back if it raises.

        ``fn`` is synchronous and gets a synchronous ``Session``. On SQLite it runs on the writer
        thread with the synchronous driver, the whole transaction in one thread round trip (the
        event loop keeps serving meanwhile); on PostgreSQL through ``AsyncSession.run_sync``. A
        caller cancelled while ``fn`` runs does not cut the transaction short: it finishes
        (committed or rolled back) before the cancellation goes on.
        """
        work: asyncio.Future[T]
        if self._sync_write_engine is None:
            work = asyncio.ensure_future(self._run_sync_in_session(fn))
        else:
            await self._write_slot_acquire()
            try:
                if self._writer_thread is None:
                    self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
                work = asyncio.get_running_loop().run_in_executor(
                    self._writer_thread, self._sync_transaction, self._sync_write_engine, fn)
                work.add_done_callback(lambda _f: self._write_slot_release())
            except BaseException:
                self._write_slot_release()
                raise
        try:
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait([work])
            raise
        self._committed()
        return result

    async def _run_sync_in_session(self, fn: Callable[[Session], T]) -> T:
        async with self._writer() as session, session.begin():
            return await session.run_sync(fn)

    @staticmethod
    def _sync_transaction(engine: Engine, fn: Callable[[Session], T]) -> T:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            return fn(session)

    async def run_sync_read(self, fn: Callable[[Session], T]) -> T:
        """Runs ``fn(session)`` in one read transaction that sees one snapshot, as ``read`` does.

        ``fn`` is synchronous and gets a synchronous ``Session``; what it raises, the caller gets. On
        SQLite it runs on one of the reader threads with the synchronous driver, the whole read in one
        thread round trip; on PostgreSQL through ``AsyncSession.run_sync`` in a REPEATABLE READ, read-only
        transaction. A caller cancelled meanwhile stops waiting; the read finishes on its own.
        """
        if self._sync_read_engine is None:
            async with self.read() as session:
                return await session.run_sync(fn)
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_pool(), self._sync_transaction, self._sync_read_engine, fn)

    async def run_core_read(self, fn: Callable[[Connection], T]) -> T:
        """``run_sync_read`` for a read of plain Core statements: ``fn`` gets the transaction's ``Connection``, not
        a ``Session`` around it (making, beginning and closing one cost some 25-40 us of a ~0.3 ms member page)."""
        if self._sync_read_engine is None:
            async with self.read_engine.connect() as conn, conn.begin():
                return await conn.run_sync(fn)
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_pool(), self._core_transaction, self._sync_read_engine, fn)

    def _reader_pool(self) -> ThreadPoolExecutor:
        if self._reader_threads is None:
            self._reader_threads = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="sqlite-reader")
        return self._reader_threads

    @staticmethod
    def _core_transaction(engine: Engine, fn: Callable[[Connection], T]) -> T:
        with engine.connect() as conn, conn.begin():
            return fn(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session that sees one snapshot of the database (SQLite: WAL; PostgreSQL: REPEATABLE READ)."""
        async with self._reader() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Applies every Alembic migration up to every head (features may branch from a common base).

        On SQLite the migration takes the write lock first; if another connection keeps it past the
        busy timeout, the error names who has the file open.
        """
        try:
            async with self.write_engine.begin() as conn:
                await conn.run_sync(self._upgrade)
        except OperationalError as err:
            if self.sqlite_path is None or "database is locked" not in str(err):
                raise
            raise WriteLockHeld(f"the SQLite write lock on {self.sqlite_path} is held by another connection; "
                                f"the file is open in {sqlite_holders(self.sqlite_path)}") from err

    def _upgrade(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            # Replicas starting together migrate one at a time.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724001)")
        cfg = Config()
        cfg.set_main_option("script_location", str(self.migrations_dir))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")

    async def connect(self, max_delay_s: float = 30.0, lock_wait_s: float = 60.0) -> None:
        """Migrates, retrying with backoff while the database cannot be reached.

        A SQLite write lock that another connection holds is waited for ``lock_wait_s`` seconds at
        most (each try logs who has the file open), then ``WriteLockHeld`` is raised.
        """
        started = time.monotonic()

        async def attempt() -> None:
            try:
                await self.migrate()
            except WriteLockHeld as err:
                if time.monotonic() - started >= lock_wait_s:
                    raise WriteLockHeld(f"gave up after {lock_wait_s:.0f} s: {err}") from err
                raise RuntimeError(str(err)) from err  # retried (and logged) like any other start-up failure

        await retry_forever(attempt, what=f"database {make_url(self.url).render_as_string(hide_password=True)}",
                            max_delay_s=max_delay_s, fatal=(WriteLockHeld,))

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)
        if self._writer_thread is not None:
            self._writer_thread.shutdown(wait=True)
            self._writer_thread = None
        if self._reader_threads is not None:
            self._reader_threads.shutdown(wait=True)
            self._reader_threads = None
        if self._sync_write_engine is not None:
            self._sync_write_engine.dispose()
        if self._sync_read_engine is not None:
            self._sync_read_engine.dispose()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def sqlite_holders(path: Path) -> str:
    """Who has ``path`` open, from /proc: each other process by pid and command line, and this process's
    own connections beyond the one asking (an engine not disposed, a connection left to the collector)."""
    target = str(path)
    others: list[str] = []
    own = 0
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return "processes this system cannot list (no /proc)"
    for pid in pids:
        count = _open_count(pid, target)
        if not count:
            continue
        if pid == me:
            own = count - 1
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = "?"
        others.append(f"pid {pid} ({command[:120]})")
    parts = others + ([f"this process (pid {me}): {own} other connection(s)"] if own > 0 else [])
    return "; ".join(parts) if parts else "no other process (the holder has closed it since)"


def _open_count(pid: int, target: str) -> int:
    """How many of ``pid``'s file descriptors are ``target`` (0 for a process gone or not ours to look at)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == target
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor among them)
    return count
