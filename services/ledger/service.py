"""How the ledger service is put together: settings, migrations, servicers, consumers."""

from __future__ import annotations

from pathlib import Path

import grpc

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.consumer import EventConsumer
from services.common.events import (
    CUSTOMER_STREAM,
    MALL_CHANGED,
    MEMBER_CARD_OPENED,
    MEMBER_CREATED,
    MEMBER_LEVEL_CHANGED,
    MEMBER_STATUS_CHANGED,
    MEMBERS_IMPORTED,
    STORE_CHANGED,
)
from services.common.server import Context, ServiceSpec
from services.ledger import scope
from services.ledger.config import LedgerSettings
from services.ledger.members import member_created, member_level_changed, member_status_changed, members_imported
from services.ledger.models import OutboxEvent, ProcessedMessage
from services.ledger.places import mall_changed, store_changed
from services.ledger.servicer import LedgerServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


def register(server: grpc.aio.Server, ctx: Context) -> list[str]:
    pb_grpc.add_LedgerServiceServicer_to_server(LedgerServicer(ctx.db), server)
    return [SERVICE_NAME]


def consumers(ctx: Context) -> list[EventConsumer]:
    return [EventConsumer(ctx.db, ctx.js, durable="ledger-customer-events", stream=CUSTOMER_STREAM,
                          handlers={MEMBER_CREATED: member_created, MEMBER_STATUS_CHANGED: member_status_changed,
                                    MEMBER_LEVEL_CHANGED: member_level_changed, MEMBERS_IMPORTED: members_imported},
                          model=ProcessedMessage),
            # Its own durable, so that it reads the CUSTOMER stream from its start when it first runs: the
            # malls and stores announced (or backfilled) before this consumer existed reach it too.
            EventConsumer(ctx.db, ctx.js, durable="ledger-places", stream=CUSTOMER_STREAM,
                          handlers={MALL_CHANGED: mall_changed, STORE_CHANGED: store_changed}, model=ProcessedMessage),
            # The malls members registered or bound cards in (the caller's scope); from the stream's start likewise.
            EventConsumer(ctx.db, ctx.js, durable="ledger-member-malls", stream=CUSTOMER_STREAM,
                          handlers={MEMBER_CREATED: scope.member_created, MEMBER_CARD_OPENED: scope.member_card_opened,
                                    MEMBERS_IMPORTED: scope.members_imported}, model=ProcessedMessage)]


def build_spec(settings: LedgerSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="ledger", settings=settings or LedgerSettings(),
        migrations_dir=Path(__file__).parent / "migrations", outbox_model=OutboxEvent, register=register,
        consumers=consumers,
    )
