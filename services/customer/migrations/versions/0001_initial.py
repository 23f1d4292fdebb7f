"""Members, and the shared outbox, processed-message and idempotency tables.

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
        "member",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("phone", sa.String(11), nullable=True, unique=True),
        sa.Column("email", sa.String(254), nullable=True, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("gender", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("member")
    op.drop_table("idempotency_record")
    op.drop_table("processed_message")
    op.drop_table("outbox_event")
