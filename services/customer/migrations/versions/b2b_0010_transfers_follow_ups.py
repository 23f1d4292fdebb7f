"""Business customers: transfer applications (5.4: transfers need approval), who asked for each
ownership transfer, and follow-up records (the source of the last follow-up time).

Existing transfers were all made by an administrator directly: the operator asked for them.

Revision ID: b2b_0010_transfers_follow_ups
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "b2b_0010_transfers_follow_ups"
down_revision = "0002_business"

TZ = sa.DateTime(timezone=True)
PENDING = sa.text("state = 1")


def upgrade() -> None:
    op.add_column("ownership_transfer", sa.Column("requested_by", sa.String(64), nullable=False,
                                                  server_default=""))
    op.add_column("ownership_transfer", sa.Column("transfer_application_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE ownership_transfer SET requested_by = operator_id")
    op.create_table(
        "transfer_application",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False, index=True),
        sa.Column("from_staff_id", sa.String(64), nullable=False),
        sa.Column("to_staff_id", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False, index=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False, index=True),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decision_note", sa.String(500), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("transfer_id", sa.BigInteger(), nullable=True),
    )
    # One pending application per customer (a partial unique index on both SQLite and PostgreSQL).
    op.create_index("uq_transfer_application_pending", "transfer_application", ["customer_id"], unique=True,
                    sqlite_where=PENDING, postgresql_where=PENDING)
    op.create_table(
        "follow_up",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=False),
        sa.Column("followed_up_at", TZ, nullable=False),
        sa.Column("method", sa.SmallInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_name", sa.String(50), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_follow_up_customer_time", "follow_up", ["customer_id", "followed_up_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_follow_up_customer_time", "follow_up")
    op.drop_table("follow_up")
    op.drop_index("uq_transfer_application_pending", "transfer_application")
    op.drop_table("transfer_application")
    with op.batch_alter_table("ownership_transfer") as batch:
        batch.drop_column("transfer_application_id")
        batch.drop_column("requested_by")
