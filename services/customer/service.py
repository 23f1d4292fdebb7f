"""How the customer service is put together: settings, migrations, servicers, consumers."""

from __future__ import annotations

from pathlib import Path

import grpc

from crowdpack.customer.v1 import (
    business_customer_service_pb2_grpc,
    classification_service_pb2_grpc,
    crowd_service_pb2_grpc,
    level_service_pb2_grpc,
    member_service_pb2_grpc,
    organization_service_pb2_grpc,
    settings_service_pb2_grpc,
)
from services.common.consumer import EventConsumer
from services.common.events import (
    ENTRIES_POSTED,
    ENTRY_POSTED,
    LEDGER_STREAM,
    ORDER_RECORDED,
    ORDER_REFUNDED,
    VOUCHER_REDEEMED,
)
from services.common.server import Context, ServiceSpec
from services.customer import ledger_projection
from services.customer.business.ownership import visible_customers
from services.customer.business.servicer import BusinessCustomerServicer
from services.customer.classification.servicer import ClassificationServicer
from services.customer.config import CustomerSettings
from services.customer.crowds.adhoc import AdHocCrowds
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.refresher import Refresher
from services.customer.crowds.servicer import CrowdServicer
from services.customer.imports.assembly import register_imports
from services.customer.levels.servicer import LevelServicer
from services.customer.members.servicer import MemberServicer
from services.customer.models import OutboxEvent, ProcessedMessage
from services.customer.organization.servicer import OrganizationServicer
from services.customer.schema import metadata  # noqa: F401 - every table on the metadata (foreign keys resolve)
from services.customer.sessions.register import register_sessions
from services.customer.settings.servicer import SettingsServicer


def register(server: grpc.aio.Server, ctx: Context) -> list[str]:
    settings = ctx.settings
    assert isinstance(settings, CustomerSettings)
    organization_service_pb2_grpc.add_OrganizationServiceServicer_to_server(OrganizationServicer(ctx.db), server)
    level_service_pb2_grpc.add_LevelServiceServicer_to_server(LevelServicer(ctx.db, settings.export_max_rows), server)
    settings_service_pb2_grpc.add_SettingsServiceServicer_to_server(SettingsServicer(ctx.db), server)
    index = CrowdIndex(ctx.db, settings.crowd_timezone)
    refresher = Refresher(ctx.db, index, daily_hour=settings.crowd_refresh_hour, poll_s=settings.crowd_refresh_poll_s)
    ctx.extras.update(crowd_index=index, crowd_refresher=refresher)
    adhoc = AdHocCrowds(ctx.db, index)
    member_service_pb2_grpc.add_MemberServiceServicer_to_server(MemberServicer(ctx.db, adhoc), server)
    crowd_service_pb2_grpc.add_CrowdServiceServicer_to_server(
        CrowdServicer(ctx.db, index, refresher, settings.export_max_rows), server)
    business_customer_service_pb2_grpc.add_BusinessCustomerServiceServicer_to_server(
        BusinessCustomerServicer(ctx.db), server)
    classification_service_pb2_grpc.add_ClassificationServiceServicer_to_server(
        ClassificationServicer(ctx.db, visible_customers), server)
    imports = register_imports(server, ctx, settings.export_max_rows, adhoc)
    sessions = register_sessions(server, ctx)
    return ["crowdpack.customer.v1.MemberService", "crowdpack.customer.v1.OrganizationService",
            "crowdpack.customer.v1.LevelService", "crowdpack.customer.v1.SettingsService",
            "crowdpack.customer.v1.CrowdService",
            "crowdpack.customer.v1.BusinessCustomerService", "crowdpack.customer.v1.ClassificationService",
            imports, *sessions]


def consumers(ctx: Context) -> list[EventConsumer]:
    return [EventConsumer(ctx.db, ctx.js, durable="customer-ledger-events", stream=LEDGER_STREAM,
                          model=ProcessedMessage, batch=1000, sync_batch_handler=ledger_projection.apply_sync,
                          handlers={ENTRY_POSTED: ledger_projection.entry_posted,
                                    ENTRIES_POSTED: ledger_projection.entries_posted,
                                    ORDER_RECORDED: ledger_projection.order_recorded,
                                    ORDER_REFUNDED: ledger_projection.order_refunded,
                                    VOUCHER_REDEEMED: ledger_projection.voucher_redeemed})]


def snapshot_dir(ctx: Context) -> Path:
    return ctx.common.state_dir / "customer-crowd-index"


async def startup(ctx: Context) -> None:
    """Loads the crowd index from its snapshot (replaying the stream since) or from the database."""
    index: CrowdIndex = ctx.extras["crowd_index"]
    await index.start(ctx.js, snapshot_dir(ctx))


def background(ctx: Context) -> list:
    index: CrowdIndex = ctx.extras["crowd_index"]
    return [index.follow(ctx.js), ctx.extras["crowd_refresher"].run(), ctx.extras["imports"].run()]


async def shutdown(ctx: Context) -> None:
    ctx.extras["crowd_index"].save(snapshot_dir(ctx))


def build_spec(settings: CustomerSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="customer", settings=settings or CustomerSettings(),
        migrations_dir=Path(__file__).parent / "migrations", outbox_model=OutboxEvent, register=register,
        consumers=consumers, startup=startup, background=background, shutdown=shutdown,
    )
