"""Accounts, and the shared outbox, processed-message and idempotency tables.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK, create_messaging_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "account",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("asset", sa.SmallInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("member_id", "asset", name="uq_account_member_asset"),
        sa.CheckConstraint("balance >= 0", name="ck_account_balance_not_negative"),
    )
    op.create_index("ix_account_member_id", "account", ["member_id"])


def downgrade() -> None:
    op.drop_table("account")
    op.drop_table("idempotency_record")
    op.drop_table("processed_message")
    op.drop_table("outbox_event")
