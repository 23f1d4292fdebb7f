"""The ledger's projection of malls and stores (customer.mall.changed.v1, customer.store.changed.v1), and of the
malls members registered or bound cards in (for the caller's scope).

Revision ID: scope_0007_places
"""

import sqlalchemy as sa
from alembic import op

revision = "scope_0007_places"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "mall_state",
        sa.Column("mall_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "store_state",
        sa.Column("store_id", sa.String(32), primary_key=True),
        sa.Column("mall_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("business_format", sa.String(50), nullable=False),
        sa.Column("brand", sa.String(100), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_store_state_mall_id", "store_state", ["mall_id"])
    op.create_table(
        "member_mall",
        sa.Column("member_id", sa.String(32), primary_key=True),
        sa.Column("mall_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("member_mall")
    op.drop_index("ix_store_state_mall_id", table_name="store_state")
    op.drop_table("store_state")
    op.drop_table("mall_state")
