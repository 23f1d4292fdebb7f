"""Staff sign-in: password hashes, refresh sessions, sign-in attempt counters.

Revision ID: gateway_0008_sign_in
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0008_sign_in"
down_revision = "0001"

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "staff_credential",
        sa.Column("staff_id", sa.BigInteger(), sa.ForeignKey("staff.id"),
                  primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_address", sa.String(64), nullable=False),
    )
    op.create_table(
        "staff_session",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("family_id", ID, nullable=False),
        sa.Column("staff_id", sa.BigInteger(), sa.ForeignKey("staff.id"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_staff_session_family_id", "staff_session", ["family_id"])
    op.create_index("ix_staff_session_staff_id", "staff_session", ["staff_id"])
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttle")
    op.drop_index("ix_staff_session_staff_id", "staff_session")
    op.drop_index("ix_staff_session_family_id", "staff_session")
    op.drop_table("staff_session")
    op.drop_table("staff_credential")
