"""Databases for tests: a fresh one per test, copied from a migrated template of the service.

Migrating is the slow part of a new database (about a second per service on PostgreSQL), so
each service's migrations run once per test session into a template, and each test gets a
copy: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL. A service
started on the copy runs Alembic as always and finds the schema at head.

PostgreSQL's ``DROP DATABASE`` waits for a checkpoint (over a second); the copies are dropped
by a few background threads, so tests do not wait for it and concurrent drops share checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from services.common.db import Database

POSTGRES_ENV = "CROWDPACK_TEST_POSTGRES_URL"
SERVICES = ("customer", "ledger", "alert")


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _migrations(service: str) -> Path:
    return Path(__file__).resolve().parents[2] / "services" / service / "migrations"


async def _migrate_async(url: str, service: str) -> None:
    db = Database(url, _migrations(service))
    try:
        await db.migrate()
    finally:
        await db.dispose()


def _migrate(url: str, service: str) -> None:
    """Migrates on a thread of its own, so that it also works when asked from inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-template") as thread:
        thread.submit(asyncio.run, _migrate_async(url, service)).result()


class Databases:
    """Hands out fresh databases for one test session; makes each service's template when first asked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.session_id = uuid.uuid4().hex[:8]
        self._templates: dict[tuple[str, str], str] = {}
        self._dropping: list[Future[None]] = []
        self._dropper: ThreadPoolExecutor | None = None

    def template(self, backend: str, service: str) -> str:
        """The name of ``service``'s migrated template on ``backend`` (a file path on SQLite)."""
        if service not in SERVICES:
            raise ValueError(f"no service {service!r}; one of {', '.join(SERVICES)}")
        key = (backend, service)
        if key not in self._templates:
            if backend == "sqlite":
                path = self.folder / f"template-{service}.db"
                _migrate(f"sqlite+aiosqlite:///{path}", service)
                with sqlite3.connect(path) as conn:  # everything into the main file, so a file copy is whole
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
                self._templates[key] = str(path)
            else:
                name = f"cp_template_{service}_{self.session_id}"
                url = self._create_postgres(name, template=None)
                _migrate(url, service)
                self._templates[key] = name
        return self._templates[key]

    @contextmanager
    def fresh(self, backend: str, folder: Path, name: str = "db", service: str | None = None) -> Iterator[str]:
        """A SQLAlchemy async URL to a new database: ``service``'s migrated schema, or empty; dropped afterwards."""
        template = self.template(backend, service) if service else None
        if backend == "sqlite":
            path = folder / f"{name}.db"
            if template:
                shutil.copyfile(template, path)
            yield f"sqlite+aiosqlite:///{path}"
            return
        dbname = f"cp_test_{name}_{uuid.uuid4().hex[:10]}"
        url = self._create_postgres(dbname, template)
        try:
            yield url
        finally:
            self._drop_later(dbname)

    def _create_postgres(self, dbname: str, template: str | None) -> str:
        admin = postgres_admin_url()
        assert admin, f"{POSTGRES_ENV} is not set"
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"' + (f' TEMPLATE "{template}"' if template else ""))
        return make_url(admin).set(database=dbname).render_as_string(hide_password=False)

    def _drop_later(self, dbname: str) -> None:
        if self._dropper is None:
            self._dropper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drop-database")
        self._dropping.append(self._dropper.submit(_drop_postgres, dbname))

    def close(self) -> None:
        """Drops the templates and waits for every drop; raises the first drop that failed."""
        for (backend, _service), name in self._templates.items():
            if backend == "postgres":
                self._drop_later(name)
        if self._dropper is not None:
            self._dropper.shutdown(wait=True)
        for dropping in self._dropping:
            dropping.result()


def _drop_postgres(dbname: str) -> None:
    admin = postgres_admin_url()
    assert admin
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@contextmanager
def fresh_database(backend: str, folder: Path, name: str = "db") -> Iterator[str]:
    """An empty database outside any session's pool (dropped before returning); for scripts and benchmarks."""
    databases = Databases(folder)
    try:
        with databases.fresh(backend, folder, name) as url:
            yield url
    finally:
        databases.close()
