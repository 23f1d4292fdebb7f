"""Online and offline consumption apart on every member's stats row (document 001's 线上下单 and 线下消费), indexed
for the member list's sorts, and filled from the orders the customer service already keeps.

Online is the ORDER_CHANNEL_ONLINE channel; every other channel is offline. Counts leave out fully refunded
orders; totals are net of refunds; the last time is the newest order's, refunded or not (as last_spend_at).

Revision ID: consumption_0011_online_offline
"""

import sqlalchemy as sa
from alembic import op

revision = "consumption_0011_online_offline"
# After the stats rows every member has (0006) and the orders they are filled from (0004).
down_revision = ("scope_0009_chinese_predefined", "0006_member_stats")

SIDES = {"online": "channel = 'ORDER_CHANNEL_ONLINE'", "offline": "channel <> 'ORDER_CHANNEL_ONLINE'"}


def upgrade() -> None:
    with op.batch_alter_table("customer_stats") as table:
        for side in SIDES:
            table.add_column(sa.Column(f"{side}_count", sa.Integer(), nullable=False, server_default="0"))
            table.add_column(sa.Column(f"{side}_total_fen", sa.BigInteger(), nullable=False, server_default="0"))
            table.add_column(sa.Column(f"{side}_last_at", sa.DateTime(timezone=True), nullable=True))
    for side, where in SIDES.items():
        orders = f"FROM member_order o WHERE o.customer_id = customer_stats.customer_id AND {where}"
        op.execute(sa.text(
            f"UPDATE customer_stats SET "
            f"{side}_count = (SELECT COUNT(*) {orders} AND NOT o.fully_refunded), "
            f"{side}_total_fen = COALESCE((SELECT SUM(o.amount_fen - o.refunded_amount_fen) {orders}), 0), "
            f"{side}_last_at = (SELECT MAX(o.occurred_at) {orders})"))
    for side in SIDES:
        for column in (f"{side}_count", f"{side}_total_fen", f"{side}_last_at"):
            op.create_index(f"ix_customer_stats_{column}_id", "customer_stats", [column, "customer_id"])


def downgrade() -> None:
    for side in SIDES:
        for column in (f"{side}_count", f"{side}_total_fen", f"{side}_last_at"):
            op.drop_index(f"ix_customer_stats_{column}_id", table_name="customer_stats")
    with op.batch_alter_table("customer_stats") as table:
        for side in SIDES:
            for column in (f"{side}_count", f"{side}_total_fen", f"{side}_last_at"):
                table.drop_column(column)
