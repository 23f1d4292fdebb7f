"""Organisation, customers, groups, tags, the timeline, and the shared messaging tables.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK, create_messaging_tables

revision = "0001"
down_revision = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "mall",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "store",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("mall_id", sa.BigInteger(), sa.ForeignKey("mall.id"), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("business_format", sa.String(50), nullable=False),
        sa.Column("floor", sa.String(20), nullable=False),
        sa.Column("tags", sa.String(500), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("mall_id", "name", name="uq_store_mall_name"),
    )
    op.create_table(
        "staff",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(11), nullable=True, unique=True),
        sa.Column("role", sa.SmallInteger(), nullable=False),
        sa.Column("store_id", sa.BigInteger(), sa.ForeignKey("store.id"), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "staff_mall",
        sa.Column("staff_id", sa.BigInteger(), sa.ForeignKey("staff.id"), primary_key=True),
        sa.Column("mall_id", sa.BigInteger(), sa.ForeignKey("mall.id"), primary_key=True),
    )
    op.create_table(
        "customer_group",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "customer",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("phone", sa.String(11), nullable=True, unique=True),
        sa.Column("email", sa.String(254), nullable=True, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("real_name", sa.String(100), nullable=False),
        sa.Column("gender", sa.SmallInteger(), nullable=False),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("avatar_url", sa.String(500), nullable=False),
        sa.Column("wechat_openid", sa.String(64), nullable=True, index=True),
        sa.Column("wechat_unionid", sa.String(64), nullable=True, index=True),
        sa.Column("douyin_id", sa.String(64), nullable=True),
        sa.Column("alipay_id", sa.String(64), nullable=True),
        sa.Column("xiaohongshu_id", sa.String(64), nullable=True),
        sa.Column("registered_at", TZ, nullable=False),
        sa.Column("registration_mall_id", sa.BigInteger(), sa.ForeignKey("mall.id"), nullable=True, index=True),
        sa.Column("card_opened", sa.Boolean(), nullable=False),
        sa.Column("card_number", sa.String(20), nullable=True, unique=True),
        sa.Column("card_open_time", TZ, nullable=True),
        sa.Column("card_open_mall_id", sa.BigInteger(), sa.ForeignKey("mall.id"), nullable=True),
        sa.Column("card_open_channel", sa.SmallInteger(), nullable=False),
        sa.Column("promotion_channel", sa.String(100), nullable=False),
        sa.Column("open_scene", sa.String(100), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False, index=True),
        sa.Column("level_frozen", sa.Boolean(), nullable=False),
        sa.Column("level_expires_at", TZ, nullable=True),
        sa.Column("group_id", sa.BigInteger(), sa.ForeignKey("customer_group.id"), nullable=True, index=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("review_status", sa.SmallInteger(), nullable=False),
        sa.Column("store_member", sa.Boolean(), nullable=False),
        sa.Column("virtual", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False, index=True),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "tag",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("predefined", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    tag = sa.table("tag", sa.column("name", sa.String), sa.column("predefined", sa.Boolean),
                   sa.column("created_at", TZ))
    now = sa.func.current_timestamp()
    op.execute(tag.insert().from_select(
        ["name", "predefined", "created_at"],
        sa.union_all(*[sa.select(sa.literal(n), sa.true(), now) for n in
                       ("key customer", "strategic", "regular", "lost", "high value", "long-term", "new")])))
    op.create_table(
        "customer_tag",
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("tag_id", sa.BigInteger(), sa.ForeignKey("tag.id"), primary_key=True, index=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "timeline_entry",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "level",
        sa.Column("number", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("discount_permille", sa.Integer(), nullable=False),
        sa.Column("upgrade_mode", sa.SmallInteger(), nullable=False),
        sa.Column("upgrade_spend_fen", sa.BigInteger(), nullable=False),
        sa.Column("validity_months", sa.SmallInteger(), nullable=False),
        sa.Column("retain_spend_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("number BETWEEN 1 AND 10", name="ck_level_number"),
    )
    op.create_table(
        "level_change",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False, index=True),
        sa.Column("from_level", sa.SmallInteger(), nullable=False),
        sa.Column("to_level", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False, index=True),
    )
    op.create_table(
        "tenant_setting",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("phone_authorization", sa.Boolean(), nullable=False),
        sa.Column("show_user_id", sa.Boolean(), nullable=False),
        sa.Column("show_level", sa.Boolean(), nullable=False),
        sa.Column("review_required", sa.Boolean(), nullable=False),
        sa.Column("hide_prices_until_approved", sa.Boolean(), nullable=False),
        sa.Column("base_level_may_order", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "customer_interaction",
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("mall_id", sa.BigInteger(), primary_key=True, index=True),
        sa.Column("first_kind", sa.String(30), nullable=False),
        sa.Column("first_at", TZ, nullable=False),
    )
    op.create_table(
        "customer_stats",
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("points_balance", sa.BigInteger(), nullable=False, index=True),
        sa.Column("red_packet_balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("stored_balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("spend_count", sa.Integer(), nullable=False, index=True),
        sa.Column("spend_total_fen", sa.BigInteger(), nullable=False, index=True),
        sa.Column("first_spend_at", TZ, nullable=True),
        sa.Column("last_spend_at", TZ, nullable=True, index=True),
        sa.Column("level_spend_fen", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_spend_fen", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in ("customer_stats", "customer_interaction", "tenant_setting", "level_change", "level",
                  "timeline_entry", "customer_tag", "tag", "customer", "customer_group", "staff_mall", "staff",
                  "store", "mall", "idempotency_record", "processed_message", "outbox_event"):
        op.drop_table(table)
