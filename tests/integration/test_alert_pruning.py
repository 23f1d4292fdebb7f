"""Member orders that left every window are pruned, in batches of members, and no window any reader sees changes:
the order consumer's (``read_windows`` since ``now - TOO_OLD``) and every rule's 90 days in any time zone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.alert.evaluation import horizon_start
from services.alert.models import MemberOrder
from services.alert.ordering import MEMBER_ORDER, ORDER_COLUMNS, TOO_OLD, read_windows
from services.alert.pruning import KEEP, OrderPruner
from services.common.bulk import insert_rows
from services.common.db import Database

pytestmark = pytest.mark.database("alert")
# The time zones furthest from UTC either way, and the malls' usual one.
ZONES = [ZoneInfo(z) for z in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Shanghai")]


async def test_orders_past_every_window_are_pruned_and_no_window_changes(database_url):
    db = Database(database_url, Path("services/alert/migrations"))
    rng = random.Random(3)
    now = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    members = [f"{m:03d}" for m in range(23)]
    malls = ["1", "2"]
    # Ages on both sides of every boundary: the rules' 90 days, the readers' 91, the pruner's 92.
    ages = [timedelta(days=d) for d in (0, 1, 45, 89.5, 90.2, 90.99, 91.01, 91.5, 91.99, 92.01, 93, 120, 400)]
    rows = []
    for i in range(400):
        when = now - rng.choice(ages) - timedelta(seconds=rng.uniform(0, 60))
        rows.append((f"o{i}", rng.choice(members), rng.choice(malls), f"s{rng.randrange(5)}", rng.randrange(1, 9_000),
                     rng.random() < 0.1, when))
    try:
        await db.run_sync_write(lambda session: insert_rows(session.connection(), MEMBER_ORDER, ORDER_COLUMNS, rows))

        async def windows():
            async with db.read() as session:
                return await session.run_sync(lambda s: read_windows(s, members, malls, now - TOO_OLD, set()))

        async def held():
            async with db.read() as session:
                return set(await session.scalars(select(MemberOrder.order_id)))

        before = await windows()
        assert sum(map(len, before.values())) > 100
        pruner = OrderPruner(db, batch=4)  # six batches of members
        old = {r[0] for r in rows if r[6] < now - KEEP}
        assert 50 < len(old) < len(rows) - 100
        assert await pruner.prune_once(now) == len(old)
        assert await held() == {r[0] for r in rows} - old
        assert await windows() == before
        # What is gone is older than the first instant of any rule's 90 days, in any time zone, by more than a day.
        for zone in ZONES:
            assert max(r[6] for r in rows if r[0] in old) < horizon_start(now, zone) - timedelta(days=1)
        assert await pruner.prune_once(now) == 0

        # Days pass: what left the window since goes too.
        later = now + timedelta(days=30)
        assert await pruner.prune_once(later) == len({r[0] for r in rows if r[6] < later - KEEP} - old)
        assert await held() == {r[0] for r in rows if r[6] >= later - KEEP}
    finally:
        await db.dispose()
