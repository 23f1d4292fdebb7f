"""The buyer's real name and phone on an order (the customer service fills missing member details from them).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("order_record") as batch:
        batch.add_column(sa.Column("buyer_real_name", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("buyer_phone", sa.String(11), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("order_record") as batch:
        batch.drop_column("buyer_phone")
        batch.drop_column("buyer_real_name")
