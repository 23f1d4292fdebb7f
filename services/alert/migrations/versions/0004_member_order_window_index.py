"""The member index of member_order covers the whole window row, so the order consumer reads a member's 90
days from the index alone (one run of index pages per member, not one table page per order). The index on
(mall, time) goes: no query reads by it any more (the re-evaluation walks the window index in member order),
and every order written paid for it.

Revision ID: 0004_member_order_window
"""

from alembic import op

revision = "0004_member_order_window"
down_revision = "0003_alert_rules"

WINDOW = ["member_id", "mall_id", "occur_time", "order_id", "store_id", "paid_amount", "fully_refunded"]


def upgrade() -> None:
    op.drop_index("ix_member_order_member", table_name="member_order")
    op.drop_index("ix_member_order_mall", table_name="member_order")
    op.create_index("ix_member_order_window", "member_order", WINDOW)


def downgrade() -> None:
    op.drop_index("ix_member_order_window", table_name="member_order")
    op.create_index("ix_member_order_mall", "member_order", ["mall_id", "occur_time"])
    op.create_index("ix_member_order_member", "member_order", ["member_id", "mall_id", "occur_time"])
