"""Malls and stores are announced on the CUSTOMER stream with their full state, and existing ones are backfilled."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from nats.js.errors import FetchTimeoutError
from sqlalchemy import select, text

from crowdpack.customer.v1 import organization_service_pb2 as pb
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.db import Database
from services.common.events import CUSTOMER_STREAM, MALL_CHANGED, STORE_CHANGED, decode
from services.customer.models import OutboxEvent
from tests.support.customer import SUPER, mask

MIGRATIONS = Path("services/customer/migrations")


async def changes(js, subject: str, count: int, timeout: float = 10.0) -> list:
    """The first ``count`` events on ``subject``, in stream order (waits for the relay to publish them)."""
    sub = await js.pull_subscribe(subject, stream=CUSTOMER_STREAM.name)
    found: list = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            try:
                msgs = await sub.fetch(count - len(found), timeout=0.5)
            except (FetchTimeoutError, TimeoutError):
                continue
            for msg in msgs:
                await msg.ack()
                found.append(decode(msg.subject, msg.data))
    finally:
        await sub.unsubscribe()
    return found


async def test_every_create_and_update_publishes_the_full_state(customer, js):
    org = customer.org
    mall = (await org.CreateMall(pb.CreateMallRequest(request_id="m1", name="万象城", timezone="Asia/Shanghai"),
                                 metadata=SUPER)).mall
    await org.UpdateMall(pb.UpdateMallRequest(request_id="m2", mall=pb.Mall(mall_id=mall.mall_id, name="万象城二期"),
                                              update_mask=mask("name")), metadata=SUPER)
    store = (await org.CreateStore(pb.CreateStoreRequest(
        request_id="s1", mall_id=mall.mall_id, name="海底捞 B1", category="餐饮", business_format="火锅", floor="B1",
        tags=["旗舰"], brand="海底捞"), metadata=SUPER)).store
    assert store.brand == "海底捞"
    await org.UpdateStore(pb.UpdateStoreRequest(request_id="s2", store=pb.Store(store_id=store.store_id, floor="1F"),
                                                update_mask=mask("floor")), metadata=SUPER)

    malls = await changes(js, MALL_CHANGED, 2)
    assert [(m.mall_id, m.name, m.timezone, m.deleted) for m in malls] == [
        (mall.mall_id, "万象城", "Asia/Shanghai", False), (mall.mall_id, "万象城二期", "Asia/Shanghai", False)]
    assert malls[0].change_time.ToDatetime() <= malls[1].change_time.ToDatetime()
    stores = await changes(js, STORE_CHANGED, 2)
    first, second = stores
    assert (first.store_id, first.mall_id, first.name, first.category, first.business_format, first.floor,
            list(first.tags), first.brand, first.deleted) == (
        store.store_id, mall.mall_id, "海底捞 B1", "餐饮", "火锅", "B1", ["旗舰"], "海底捞", False)
    # Full state, not a diff: the floor changed and everything else is still there.
    assert (second.floor, second.brand, second.category, list(second.tags)) == ("1F", "海底捞", "餐饮", ["旗舰"])

    by_brand = await org.ListStores(pb.ListStoresRequest(brand="海底捞"))
    assert [s.store_id for s in by_brand.stores] == [store.store_id]
    assert not (await org.ListStores(pb.ListStoresRequest(brand="海"))).stores


async def test_a_database_from_before_the_events_announces_its_malls_and_stores(database_url):
    db = Database(database_url, MIGRATIONS)
    try:
        def upgrade(conn, target: str) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)

        # The schema as it was before stores had brands and malls and stores had events.
        async with db.write_engine.begin() as conn:
            await conn.run_sync(upgrade, "0007_retention")
            await conn.execute(text("INSERT INTO mall (id, name, timezone, created_at) VALUES "
                                    "(1, 'A', 'Asia/Shanghai', '2026-01-01 00:00:00'), "
                                    "(2, 'B', 'Asia/Urumqi', '2026-01-01 00:00:00')"))
            await conn.execute(text(
                "INSERT INTO store (id, mall_id, name, category, business_format, floor, tags, created_at) VALUES "
                "(7, 2, 'Tea', '餐饮', '茶饮', '2F', 'new,flagship', '2026-01-02 00:00:00')"))
        await db.migrate()
        async with db.read() as session:
            rows = (await session.execute(select(OutboxEvent.subject, OutboxEvent.payload)
                                          .order_by(OutboxEvent.seq))).all()
        announced = [decode(subject, payload) for subject, payload in rows]
        assert [(type(e).__name__, e.name) for e in announced] == [
            ("MallChanged", "A"), ("MallChanged", "B"), ("StoreChanged", "Tea")]
        assert announced[1] == events.MallChanged(mall_id="2", name="B", timezone="Asia/Urumqi",
                                                  change_time=announced[1].change_time)
        tea = announced[2]
        assert (tea.store_id, tea.mall_id, tea.category, tea.business_format, tea.floor, list(tea.tags), tea.brand) \
            == ("7", "2", "餐饮", "茶饮", "2F", ["new", "flagship"], "")
        assert all(e.HasField("change_time") for e in announced)
    finally:
        await db.dispose()
