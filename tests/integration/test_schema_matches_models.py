"""Each service's Alembic migrations build exactly the schema its models declare, on both backends."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import Database

SERVICES = ("customer", "ledger", "alert")


def models_of(service: str):
    """The service's Base, with every feature's models imported onto it."""
    base = importlib.import_module(f"services.{service}.models").Base
    for module in pkgutil.walk_packages([f"services/{service}"], prefix=f"services.{service}."):
        if module.name.endswith(".models"):
            importlib.import_module(module.name)
    return base


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_build_what_the_models_declare(database_url, service):
    db = Database(database_url, Path(f"services/{service}/migrations"))
    try:
        await db.migrate()
        metadata = models_of(service).metadata
        async with db.write_engine.connect() as conn:
            # Types are left out: a foreign key's column takes its type from the key it references.
            diffs = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": False}), metadata))
        assert diffs == []
    finally:
        await db.dispose()
