"""The whitelist, and the shared outbox, processed-message and idempotency tables.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import create_messaging_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "whitelist_entry",
        sa.Column("member_id", sa.String(32), primary_key=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_whitelist_entry_created_at", "whitelist_entry", ["created_at"])


def downgrade() -> None:
    op.drop_table("whitelist_entry")
    op.drop_table("idempotency_record")
    op.drop_table("processed_message")
    op.drop_table("outbox_event")
