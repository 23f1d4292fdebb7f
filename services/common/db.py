"""The database: SQLAlchemy 2.x async engines, sessions and Alembic migrations.

SQLite (WAL) is the embedded default; a ``postgresql+psycopg://`` URL selects PostgreSQL.
On SQLite, writes go through one connection that begins with ``BEGIN IMMEDIATE`` so
writers queue in the event loop instead of failing with "database is locked"; reads use a
small pool of their own and see the last commit (WAL). On PostgreSQL both are one pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from services.common.logs import get_logger
from services.common.retry import retry_forever

log = get_logger(__name__)


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """One service's database: a writer, a reader, and the migrations that shape it."""

    def __init__(self, url: str, migrations_dir: Path) -> None:
        self.url = url
        self.migrations_dir = migrations_dir
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=4)
        else:
            self.write_engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            self.read_engine = self.write_engine
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._after_commit: list[Callable[[], None]] = []

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` after every committed write transaction (the outbox relay's wake-up)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._writer() as session:
            async with session.begin():
                yield session
        for callback in self._after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session."""
        async with self._reader() as session:
            async with session.begin():
                yield session

    async def migrate(self) -> None:
        """Applies every Alembic migration up to every head (features may branch from a common base)."""
        async with self.write_engine.begin() as conn:
            await conn.run_sync(self._upgrade)

    def _upgrade(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            # Replicas starting together migrate one at a time.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724001)")
        cfg = Config()
        cfg.set_main_option("script_location", str(self.migrations_dir))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")

    async def connect(self, max_delay_s: float = 30.0) -> None:
        """Migrates, retrying with backoff while the database cannot be reached."""
        await retry_forever(self.migrate, what=f"database {make_url(self.url).render_as_string(hide_password=True)}",
                            max_delay_s=max_delay_s)

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


