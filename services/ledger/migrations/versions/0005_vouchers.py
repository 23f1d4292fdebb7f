"""Voucher redemptions: once per code, with the points they cost.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "0005"
down_revision = "0004"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "voucher_redemption",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("voucher_code", sa.String(64), nullable=False, unique=True),
        sa.Column("voucher_name", sa.String(100), nullable=False),
        sa.Column("points_cost", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint("points_cost >= 0", name="ck_voucher_redemption_points_cost"),
    )
    op.create_index("ix_voucher_redemption_member_occurred", "voucher_redemption", ["member_id", "occurred_at"])


def downgrade() -> None:
    op.drop_table("voucher_redemption")
