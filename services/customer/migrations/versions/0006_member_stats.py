"""Every member has a stats row, and the list's sort columns are indexed with the id that breaks ties.

The member list sorts on ``customer_stats`` columns and pages by (value, id). With a row for
every member the list can join it (not outer join it) and walk the (column, customer_id) index
in order instead of sorting every matching member.

Revision ID: 0006_member_stats
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_member_stats"
down_revision = "0004_projection"

SORT_COLUMNS = ("points_balance", "spend_total_fen", "spend_count", "last_spend_at")


def upgrade() -> None:
    op.execute(sa.text(
        "INSERT INTO customer_stats (customer_id, points_balance, red_packet_balance_fen, stored_balance_fen, "
        "spend_count, spend_total_fen, level_spend_fen, cumulative_spend_fen, points_entry_id, "
        "red_packet_entry_id, stored_entry_id) "
        "SELECT id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM customer "
        "WHERE kind = 1 AND NOT EXISTS (SELECT 1 FROM customer_stats s WHERE s.customer_id = customer.id)"))
    for column in SORT_COLUMNS:
        op.drop_index(f"ix_customer_stats_{column}", table_name="customer_stats")
        op.create_index(f"ix_customer_stats_{column}_id", "customer_stats", [column, "customer_id"])


def downgrade() -> None:
    for column in SORT_COLUMNS:
        op.drop_index(f"ix_customer_stats_{column}_id", table_name="customer_stats")
        op.create_index(f"ix_customer_stats_{column}", "customer_stats", [column])
