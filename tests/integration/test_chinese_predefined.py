"""Predefined data in the documents' words, on new databases and on databases made before (a migration)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from services.common.db import Database

MIGRATIONS = Path("services/customer/migrations")
TAGS = ["重点客户", "战略客户", "普通客户", "流失客户", "高价值客户", "长期合作", "新客户"]
NOW = "'2026-01-01 00:00:00'"


def upgrade(conn, *targets: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    for target in targets:
        command.upgrade(cfg, target)


async def predefined_tags(db: Database) -> list[str]:
    async with db.read() as session:
        return list((await session.scalars(text("SELECT name FROM tag WHERE predefined = :p ORDER BY id"),
                                           {"p": True})).all())


async def test_a_new_database_has_the_documents_predefined_tags(database_url):
    db = Database(database_url, MIGRATIONS)
    try:
        await db.migrate()
        assert sorted(await predefined_tags(db)) == sorted(TAGS)
    finally:
        await db.dispose()


async def test_an_existing_database_is_migrated_keeping_who_carries_which_tag(database_url):
    db = Database(database_url, MIGRATIONS)
    try:
        async with db.write_engine.begin() as conn:
            await conn.run_sync(upgrade, "0003_imports", "0005_crowds", "scope_0008_store_brand")
            await conn.execute(text(f"INSERT INTO mall (id, name, timezone, created_at) VALUES "
                                    f"(1, 'A', 'Asia/Shanghai', {NOW})"))
            await conn.execute(text(f"INSERT INTO crowd_category (mall_id, name, position, is_default, created_at) "
                                    f"VALUES (1, 'uncategorised', 0, :t, {NOW}), (1, 'VIP', 1, :f, {NOW})"),
                               {"t": True, "f": False})
            for customer_id in (1, 2):
                await conn.execute(text(
                    "INSERT INTO customer (id, kind, name, real_name, gender, avatar_url, registered_at, card_opened, "
                    "card_open_channel, promotion_channel, open_scene, level, level_frozen, disabled, review_status, "
                    f"store_member, virtual, created_at, updated_at) VALUES (:id, 1, '', '', 3, '', {NOW}, :f, 0, "
                    f"'', '', 0, :f, :f, 2, :f, :f, {NOW}, {NOW})"), {"id": customer_id, "f": False})
            # Someone had made a tag of their own with one of the documents' names.
            await conn.execute(text(f"INSERT INTO tag (name, predefined, created_at) VALUES ('战略客户', :f, {NOW})"),
                               {"f": False})
            ids = dict((await conn.execute(text("SELECT name, id FROM tag"))).all())
            await conn.execute(text(
                f"INSERT INTO customer_tag (customer_id, tag_id, created_at) VALUES (1, :new, {NOW}), "
                f"(1, :strategic, {NOW}), (2, :strategic, {NOW}), (2, :own, {NOW})"),
                {"new": ids["new"], "strategic": ids["strategic"], "own": ids["战略客户"]})
        await db.migrate()

        assert sorted(await predefined_tags(db)) == sorted(TAGS)
        async with db.read() as session:
            carried = (await session.execute(text(
                "SELECT ct.customer_id, t.name FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
                "ORDER BY ct.customer_id, t.name"))).all()
            categories = (await session.execute(text(
                "SELECT name, is_default FROM crowd_category ORDER BY position"))).all()
            english = await session.scalar(text("SELECT count(*) FROM tag WHERE name IN ('new', 'strategic')"))
        assert [tuple(r) for r in carried] == [(1, "战略客户"), (1, "新客户"), (2, "战略客户")]
        assert [tuple(r) for r in categories] == [("未分类", True), ("VIP", False)]
        assert english == 0
    finally:
        await db.dispose()
