"""Alembic glue every service's ``migrations/env.py`` calls, and the shared tables' DDL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import MetaData

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def run_env(target_metadata: MetaData) -> None:
    """Runs the migrations on the connection ``Database.migrate`` hands over."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def create_messaging_tables() -> None:
    """The outbox, the consumers' processed-message record and the idempotency record."""
    unsent = sa.text("published_at IS NULL")
    op.create_table(
        "outbox_event",
        sa.Column("seq", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_event_unsent", "outbox_event", ["seq"], sqlite_where=unsent, postgresql_where=unsent)
    op.create_table(
        "processed_message",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("msg_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


# The indexes retention prunes by (services/common/retention.py): (name, table, column).
RETENTION_INDEXES = (("ix_idempotency_record_created_at", "idempotency_record", "created_at"),
                     ("ix_processed_message_processed_at", "processed_message", "processed_at"),
                     ("ix_outbox_event_published_at", "outbox_event", "published_at"))


def create_retention_indexes() -> None:
    for name, table, column in RETENTION_INDEXES:
        op.create_index(name, table, [column])


def drop_retention_indexes() -> None:
    for name, table, _ in RETENTION_INDEXES:
        op.drop_index(name, table_name=table)
