"""Rules, alerts and the orders behind them, the order windows, the mall / store / member projections and
the daily digests.

Revision ID: 0003_alert_rules
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_alert_rules"
down_revision = "0002"

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mall_view",
        sa.Column("mall_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("changed_at", TS, nullable=True),
    )
    op.create_table(
        "store_view",
        sa.Column("store_id", sa.String(32), primary_key=True),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("business_format", sa.String(50), nullable=False),
        sa.Column("floor", sa.String(20), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", TS, nullable=True),
    )
    op.create_index("ix_store_view_mall_id", "store_view", ["mall_id"])
    op.create_table(
        "member_view",
        sa.Column("member_id", sa.String(32), primary_key=True),
        sa.Column("virtual", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("store_member", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "member_order",
        sa.Column("order_id", sa.String(32), primary_key=True),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("fully_refunded", sa.Boolean(), nullable=False),
        sa.Column("occur_time", TS, nullable=False),
    )
    op.create_index("ix_member_order_member", "member_order", ["member_id", "mall_id", "occur_time"])
    op.create_index("ix_member_order_mall", "member_order", ["mall_id", "occur_time"])
    op.create_table(
        "alert_rule",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("scope_kind", sa.Integer(), nullable=False),
        sa.Column("scope_values", sa.JSON(), nullable=False),
        sa.Column("single_enabled", sa.Boolean(), nullable=False),
        sa.Column("single_min_paid", sa.BigInteger(), nullable=True),
        sa.Column("any_enabled", sa.Boolean(), nullable=False),
        sa.Column("any_days", sa.Integer(), nullable=True),
        sa.Column("any_min_count", sa.Integer(), nullable=True),
        sa.Column("any_min_paid", sa.BigInteger(), nullable=True),
        sa.Column("total_enabled", sa.Boolean(), nullable=False),
        sa.Column("total_days", sa.Integer(), nullable=True),
        sa.Column("total_min_count", sa.Integer(), nullable=True),
        sa.Column("total_min_paid", sa.BigInteger(), nullable=True),
        sa.Column("creator_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("editor_id", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("eval_state", sa.Integer(), nullable=False),
        sa.Column("eval_version", sa.Integer(), nullable=False),
        sa.Column("eval_total", sa.BigInteger(), nullable=False),
        sa.Column("eval_done", sa.BigInteger(), nullable=False),
        sa.Column("eval_raised", sa.BigInteger(), nullable=False),
        sa.Column("eval_cursor", sa.String(32), nullable=False),
        sa.Column("eval_started_at", TS, nullable=True),
        sa.Column("eval_finished_at", TS, nullable=True),
    )
    op.create_index("ix_alert_rule_mall_id", "alert_rule", ["mall_id"])
    op.create_table(
        "alert",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_name", sa.String(50), nullable=False),
        sa.Column("conditions", sa.Integer(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("first_triggered_at", TS, nullable=False),
        sa.Column("last_triggered_at", TS, nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("member_id", "rule_id", name="uq_alert_member_rule"),
    )
    op.create_index("ix_alert_mall", "alert", ["mall_id", "id"])
    op.create_index("ix_alert_rule_id", "alert", ["rule_id"])
    op.create_table(
        "alert_order",
        sa.Column("alert_id", sa.BigInteger(), primary_key=True),
        sa.Column("condition", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.String(32), primary_key=True),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("occur_time", TS, nullable=False),
    )
    op.create_table(
        "digest",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("local_date", sa.String(10), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("last_alert_id", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("delivery_state", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
    )
    op.create_index("ix_digest_pending", "digest", ["delivery_state", "next_attempt_at"])
    op.create_index("ix_digest_mall", "digest", ["mall_id", "local_date"])


def downgrade() -> None:
    for table in ("digest", "alert_order", "alert", "alert_rule", "member_order", "member_view", "store_view",
                  "mall_view"):
        op.drop_table(table)
