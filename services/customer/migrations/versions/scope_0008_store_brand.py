"""Stores gain a brand; every existing mall and store is announced once (customer.mall/store.changed.v1).

The mall and store events carry full state and are written on every change from now on; this
backfill writes one per existing mall, then one per existing store, into the outbox, so a consumer
created later (the ledger's and the alert service's projections) that reads the CUSTOMER stream
from its start sees every mall and store.

Revision ID: scope_0008_store_brand
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from google.protobuf.timestamp_pb2 import Timestamp

from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.outbox import OUTBOX_COLUMNS, event_rows

revision = "scope_0008_store_brand"
down_revision = "0007_retention"

CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("store") as batch:
        batch.add_column(sa.Column("brand", sa.String(100), nullable=False, server_default=""))
    op.create_index("ix_store_brand", "store", ["brand"])
    conn = op.get_bind()
    now = datetime.now(UTC)
    when = Timestamp()
    when.FromDatetime(now)
    messages: list = [events.MallChanged(mall_id=str(row.id), name=row.name, timezone=row.timezone,
                                         change_time=when)
                      for row in conn.execute(sa.text("SELECT id, name, timezone FROM mall ORDER BY id"))]
    messages += [events.StoreChanged(
        store_id=str(row.id), mall_id=str(row.mall_id), name=row.name, category=row.category,
        business_format=row.business_format, floor=row.floor, tags=[t for t in row.tags.split(",") if t],
        brand=row.brand, change_time=when)
        for row in conn.execute(sa.text(
            "SELECT id, mall_id, name, category, business_format, floor, tags, brand FROM store ORDER BY id"))]
    outbox = sa.table("outbox_event", *(sa.column(c) for c in OUTBOX_COLUMNS))
    rows = event_rows(messages, now)
    for start in range(0, len(rows), CHUNK):
        conn.execute(outbox.insert(), [dict(zip(OUTBOX_COLUMNS, row)) for row in rows[start:start + CHUNK]])


def downgrade() -> None:
    op.drop_index("ix_store_brand", table_name="store")
    with op.batch_alter_table("store") as batch:
        batch.drop_column("brand")
