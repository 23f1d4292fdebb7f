"""The journal: entries, points lots, points debt, reason templates and the members' state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # Plain DDL that SQLite and PostgreSQL both accept, so the account table (and its CHECK
    # on balance) is altered in place rather than rebuilt.
    op.execute("ALTER TABLE account ADD COLUMN debt BIGINT NOT NULL DEFAULT 0 "
               "CONSTRAINT ck_account_debt_not_negative CHECK (debt >= 0)")
    op.create_table(
        "journal_entry",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reason_template_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(100), nullable=False, server_default=""),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.Column("voucher", sa.String(500), nullable=False, server_default=""),
        sa.Column("document_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mall_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("store_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("operator_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("reversal_of_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("request_id", "line", name="uq_journal_entry_request_line"),
        sa.CheckConstraint("amount <> 0", name="ck_journal_entry_amount_not_zero"),
        sa.CheckConstraint("balance_after >= 0", name="ck_journal_entry_balance_after_not_negative"),
    )
    op.create_index("ix_journal_entry_account_id_id", "journal_entry", ["account_id", "id"])
    # An entry is reversed at most once; ordinary entries (no reversal_of_id) stay out of the index.
    reversal = sa.text("reversal_of_id IS NOT NULL")
    op.create_index("uq_journal_entry_reversal_of_id", "journal_entry", ["reversal_of_id"], unique=True,
                    sqlite_where=reversal, postgresql_where=reversal)

    op.create_table(
        "points_lot",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), sa.ForeignKey("journal_entry.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="ck_points_lot_remaining_in_range"),
    )
    open_lot = sa.text("remaining > 0")
    due_lot = sa.text("remaining > 0 AND expires_at IS NOT NULL")
    op.create_index("ix_points_lot_open", "points_lot", ["account_id", "id"], sqlite_where=open_lot,
                    postgresql_where=open_lot)
    op.create_index("ix_points_lot_due", "points_lot", ["expires_at"], sqlite_where=due_lot,
                    postgresql_where=due_lot)

    op.create_table(
        "member_state",
        sa.Column("member_id", sa.String(32), primary_key=True),
        sa.Column("level", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("virtual", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("level_changed_at", sa.DateTime(timezone=True), nullable=True),
    )

    live = sa.text("deleted_at IS NULL")
    op.create_table(
        "reason_template",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("asset", sa.SmallInteger(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("uq_reason_template_live_name", "reason_template", ["asset", "name"], unique=True,
                    sqlite_where=live, postgresql_where=live)


def downgrade() -> None:
    op.drop_table("reason_template")
    op.drop_table("member_state")
    op.drop_table("points_lot")
    op.drop_table("journal_entry")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("debt")
