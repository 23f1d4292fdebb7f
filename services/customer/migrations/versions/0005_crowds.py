"""Crowd package categories and packages.

Revision ID: 0005_crowds
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "0005_crowds"
down_revision = "0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crowd_category",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("mall_id", sa.BigInteger(), sa.ForeignKey("mall.id"), nullable=False, index=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("mall_id", "name", name="uq_crowd_category_mall_name"),
    )
    op.create_table(
        "crowd_package",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("mall_id", sa.BigInteger(), sa.ForeignKey("mall.id"), nullable=False, index=True),
        sa.Column("category_id", sa.BigInteger(), sa.ForeignKey("crowd_category.id"), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("remark", sa.String(500), nullable=False),
        sa.Column("definition", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("member_count", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", TZ, nullable=True),
        sa.Column("failure_reason", sa.String(500), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_requested_at", TZ, nullable=True, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("creator_id", sa.String(64), nullable=False),
        sa.Column("editor_id", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("mall_id", "name", name="uq_crowd_package_mall_name"),
    )


def downgrade() -> None:
    op.drop_table("crowd_package")
    op.drop_table("crowd_category")
