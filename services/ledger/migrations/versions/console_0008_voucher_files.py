"""Voucher files (变动凭证): the receipts uploaded to back manual adjustments.

Revision ID: console_0008_voucher_files
"""

import sqlalchemy as sa
from alembic import op

revision = "console_0008_voucher_files"
down_revision = "scope_0007_places"

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "voucher_file",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("member_id", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(50), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploader_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size >= 0", name="ck_voucher_file_size"),
    )
    op.create_index("ix_voucher_file_member_id", "voucher_file", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_voucher_file_member_id", table_name="voucher_file")
    op.drop_table("voucher_file")
