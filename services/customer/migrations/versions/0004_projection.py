"""The ledger projection: member orders (for stats and crowd packages) and balance watermarks.

Revision ID: 0004_projection
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_projection"
down_revision = "0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "member_order",
        sa.Column("order_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False, index=True),
        sa.Column("mall_id", sa.BigInteger(), nullable=True),
        sa.Column("store_id", sa.BigInteger(), nullable=True, index=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("fully_refunded", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False, index=True),
    )
    with op.batch_alter_table("customer_stats") as batch:
        # The last ledger entry applied per asset: an older entry redelivered late never overwrites a newer balance.
        batch.add_column(sa.Column("points_entry_id", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("red_packet_entry_id", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("stored_entry_id", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("customer_stats") as batch:
        batch.drop_column("stored_entry_id")
        batch.drop_column("red_packet_entry_id")
        batch.drop_column("points_entry_id")
    op.drop_table("member_order")
