"""Orders, their refunds, and the points rules that decide what they earn.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "points_rule",
        sa.Column("mall_id", sa.String(32), primary_key=True),
        sa.Column("points_per_yuan", sa.Integer(), nullable=False),
        sa.Column("level_multipliers", sa.JSON(), nullable=False),
        sa.Column("excluded_store_ids", sa.JSON(), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "order_record",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("external_order_no", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("points_earned", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("points_reversed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "external_order_no", name="uq_order_record_channel_external_no"),
        sa.CheckConstraint("amount > 0 AND paid_amount >= 0 AND paid_amount <= amount",
                           name="ck_order_record_amounts"),
        sa.CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="ck_order_record_refunded"),
        sa.CheckConstraint("points_reversed >= 0 AND points_reversed <= points_earned",
                           name="ck_order_record_points_reversed"),
    )
    op.create_index("ix_order_record_member_occurred", "order_record", ["member_id", "occurred_at"])
    op.create_table(
        "order_refund",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.BigInteger(), sa.ForeignKey("order_record.id"), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("points_reversed", sa.BigInteger(), nullable=False),
        sa.Column("points_debt", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_order_refund_order_id", "order_refund", ["order_id"])


def downgrade() -> None:
    op.drop_table("order_refund")
    op.drop_table("order_record")
    op.drop_table("points_rule")
