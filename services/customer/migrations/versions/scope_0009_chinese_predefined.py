"""Predefined data in the product documents' words: the seven predefined tags of document 003 and the default
crowd category 未分类 (the default group's name, 默认分组, lives in code).

A custom tag that already carries one of the Chinese names becomes the predefined one: the English
tag's customers (and import jobs) move onto it and the English tag goes; a crowd package condition
naming the English tag's id then names a tag that no longer exists, as after any tag deletion.
A mall whose own category is already called
未分类 keeps it, and its uncategorised category keeps the old name.

Revision ID: scope_0009_chinese_predefined
"""

import sqlalchemy as sa
from alembic import op

revision = "scope_0009_chinese_predefined"
# After the tables it renames in exist (tags: 0001; import jobs: 0003; crowd categories: 0005).
down_revision = ("scope_0008_store_brand", "0003_imports", "0005_crowds")

TAGS = {"key customer": "重点客户", "strategic": "战略客户", "regular": "普通客户", "lost": "流失客户",
        "high value": "高价值客户", "long-term": "长期合作", "new": "新客户"}
UNCATEGORISED = ("uncategorised", "未分类")


def _rename_tags(pairs: dict[str, str]) -> None:
    conn = op.get_bind()
    for old, new in pairs.items():
        source = conn.execute(sa.text("SELECT id FROM tag WHERE name = :n AND predefined = :p"),
                              {"n": old, "p": True}).scalar()
        if source is None:
            continue
        target = conn.execute(sa.text("SELECT id FROM tag WHERE name = :n"), {"n": new}).scalar()
        if target is None:
            conn.execute(sa.text("UPDATE tag SET name = :n WHERE id = :id"), {"n": new, "id": source})
            continue
        conn.execute(sa.text("UPDATE tag SET predefined = :p WHERE id = :id"), {"p": True, "id": target})
        conn.execute(sa.text(
            "INSERT INTO customer_tag (customer_id, tag_id, created_at) SELECT customer_id, :target, created_at "
            "FROM customer_tag AS ct WHERE tag_id = :source AND NOT EXISTS "
            "(SELECT 1 FROM customer_tag AS o WHERE o.customer_id = ct.customer_id AND o.tag_id = :target)"),
            {"source": source, "target": target})
        conn.execute(sa.text("DELETE FROM customer_tag WHERE tag_id = :id"), {"id": source})
        conn.execute(sa.text("UPDATE import_job SET tag_id = :target WHERE tag_id = :source"),
                     {"source": source, "target": target})
        conn.execute(sa.text("DELETE FROM tag WHERE id = :id"), {"id": source})


def _rename_default_categories(old: str, new: str) -> None:
    op.get_bind().execute(sa.text(
        "UPDATE crowd_category SET name = :new WHERE is_default = :d AND name = :old AND NOT EXISTS "
        "(SELECT 1 FROM crowd_category AS o WHERE o.mall_id = crowd_category.mall_id AND o.name = :new)"),
        {"old": old, "new": new, "d": True})


def upgrade() -> None:
    _rename_tags(TAGS)
    _rename_default_categories(*UNCATEGORISED)


def downgrade() -> None:
    _rename_tags({new: old for old, new in TAGS.items()})
    _rename_default_categories(*reversed(UNCATEGORISED))
