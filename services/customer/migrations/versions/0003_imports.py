"""Member imports: uploaded files (in chunks), jobs with their progress, and the rows they skipped.

Revision ID: 0003_imports
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.common.migrations import BIGINT_PK

revision = "0003_imports"
down_revision = "0001"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_file",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.SmallInteger(), nullable=False),
        sa.Column("detected_encoding", sa.SmallInteger(), nullable=False),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "import_file_chunk",
        sa.Column("file_id", sa.BigInteger(), sa.ForeignKey("import_file.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "import_job",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("file_id", sa.BigInteger(), sa.ForeignKey("import_file.id"), nullable=False, index=True),
        sa.Column("mode", sa.SmallInteger(), nullable=False),
        sa.Column("encoding", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False, index=True),
        sa.Column("tag_id", sa.BigInteger(), sa.ForeignKey("tag.id"), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("total_rows", sa.BigInteger(), nullable=False),
        sa.Column("processed_rows", sa.BigInteger(), nullable=False),
        sa.Column("created_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_count", sa.BigInteger(), nullable=False),
        sa.Column("unchanged_count", sa.BigInteger(), nullable=False),
        sa.Column("invalid_count", sa.BigInteger(), nullable=False),
        sa.Column("duplicate_count", sa.BigInteger(), nullable=False),
        sa.Column("conflict_count", sa.BigInteger(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("completed_at", TZ, nullable=True),
    )
    op.create_table(
        "import_row_issue",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger(), sa.ForeignKey("import_job.id"), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
    )
    op.create_index("ix_import_row_issue_job_row", "import_row_issue", ["job_id", "row_number"])


def downgrade() -> None:
    for table in ("import_row_issue", "import_job", "import_file_chunk", "import_file"):
        op.drop_table(table)
