"""The live members of a level or group counted from an index: ``(level, deleted_at)`` and ``(group_id, deleted_at)``
replace the single-column indexes (at 1M members, ListLevels' count read every member's row: 0.9-2.2 s).

Revision ID: counts_0012_live_level_group
"""

from alembic import op

revision = "counts_0012_live_level_group"
down_revision = "0001"


def upgrade() -> None:
    for column in ("level", "group_id"):
        op.create_index(f"ix_customer_{column}_deleted_at", "customer", [column, "deleted_at"])
        op.drop_index(f"ix_customer_{column}", "customer")


def downgrade() -> None:
    for column in ("level", "group_id"):
        op.create_index(f"ix_customer_{column}", "customer", [column])
        op.drop_index(f"ix_customer_{column}_deleted_at", "customer")
