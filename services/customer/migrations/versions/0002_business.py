"""Business customers: archive, contacts, ownership transfers and the daily code sequence.

Revision ID: 0002_business
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "0002_business"
down_revision = "0001"

TZ = sa.DateTime(timezone=True)
PRIMARY = sa.text("is_primary")


def upgrade() -> None:
    op.create_table(
        "business_profile",
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("code", sa.String(16), nullable=False, unique=True),
        sa.Column("short_name", sa.String(50), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("industry", sa.String(50), nullable=False, index=True),
        sa.Column("scale", sa.String(50), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("website", sa.String(500), nullable=False),
        sa.Column("founded_date", sa.Date(), nullable=True),
        sa.Column("credit_limit_fen", sa.BigInteger(), nullable=False),
        sa.Column("payment_terms", sa.String(100), nullable=False),
        sa.Column("payment_days", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("owner_staff_id", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.SmallInteger(), nullable=False, index=True),
        sa.Column("annual_revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("cooperation_years", sa.Integer(), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False, index=True),
        sa.Column("last_follow_up_at", TZ, nullable=True, index=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.CheckConstraint("credit_limit_fen >= 0", name="ck_business_profile_credit_limit"),
        sa.CheckConstraint("payment_days >= 0", name="ck_business_profile_payment_days"),
        sa.CheckConstraint("annual_revenue_fen >= 0", name="ck_business_profile_revenue"),
        sa.CheckConstraint("cooperation_years >= 0", name="ck_business_profile_years"),
    )
    op.create_table(
        "contact",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False, index=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("title", sa.String(50), nullable=False),
        sa.Column("department", sa.String(50), nullable=False),
        sa.Column("mobile", sa.String(11), nullable=True),
        sa.Column("landline", sa.String(30), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("wechat", sa.String(64), nullable=False),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("hobbies", sa.String(200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    # At most one primary contact per customer (a partial unique index on both SQLite and PostgreSQL).
    op.create_index("uq_contact_primary", "contact", ["customer_id"], unique=True,
                    sqlite_where=PRIMARY, postgresql_where=PRIMARY)
    op.create_table(
        "ownership_transfer",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customer.id"), nullable=False, index=True),
        sa.Column("from_staff_id", sa.String(64), nullable=False),
        sa.Column("to_staff_id", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "business_code_sequence",
        sa.Column("day", sa.String(8), primary_key=True),
        sa.Column("last_value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("business_code_sequence", "ownership_transfer", "contact", "business_profile"):
        op.drop_table(table)
