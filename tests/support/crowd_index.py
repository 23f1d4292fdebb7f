"""Comparing a crowd index with one built from the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.common.db import Database
from services.customer.crowds.columns import COLUMNS
from services.customer.crowds.index import CrowdIndex


def contents(crowd: CrowdIndex) -> dict:
    """Everything a package can see: members, each column (values where valid), every non-empty member bitmap."""
    ix = crowd.index
    bitmaps = {}
    for name in ix.bitmaps():
        if name == "live" or name.startswith(("tag:", "group:", "interaction:")):
            ids = sorted(ix.evaluate({"groups": [{"op": "include", "all": [{"bitmap": name}]}]}))
            if ids:
                bitmaps[name] = ids
    columns = {}
    for name in COLUMNS:
        values, valid = ix.column_values(name)
        columns[name] = ((values * valid).tolist(), valid.tolist())
    return {"members": ix.n_members, "orders": ix.n_orders, "bitmaps": bitmaps, "columns": columns}


async def fresh(db: Database) -> CrowdIndex:
    """An index built from the database now."""
    index = CrowdIndex(db)
    await index.build()
    return index


async def wait_until(predicate: Callable[[], Awaitable[object]], timeout: float = 20.0) -> object:
    """``predicate``'s first true value, polled every 0.1 s; its last value once ``timeout`` has passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)
