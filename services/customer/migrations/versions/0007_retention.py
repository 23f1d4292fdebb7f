"""Indexes for retention: the shared tables are pruned by age (services/common/retention.py).

Revision ID: 0007_retention
"""

from services.common.migrations import create_retention_indexes, drop_retention_indexes

revision = "0007_retention"
down_revision = "0001"


def upgrade() -> None:
    create_retention_indexes()


def downgrade() -> None:
    drop_retention_indexes()
