"""How the alert service is put together: settings, migrations, servicers, consumers, background jobs.

Named `assembly` (as `customer/imports/assembly.py`), not `service`: in this package `service.py` holds the
domain operations the servicer calls, as a customer feature's does.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from services.alert.config import AlertSettings
from services.alert.consumers import customer_consumer, order_consumer
from services.alert.customer_client import CustomerClient
from services.alert.digest import DigestJob
from services.alert.models import OutboxEvent
from services.alert.pruning import OrderPruner
from services.alert.reevaluation import Reevaluator
from services.alert.rules import RuleCache
from services.alert.servicer import AlertServicer
from services.common.consumer import EventConsumer
from services.common.identity import CachingSigner, signer_from
from services.common.server import Context, ServiceSpec

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AlertService"].full_name


def _parts(ctx: Context) -> tuple[RuleCache, Reevaluator]:
    """The order consumer's rule cache and the re-evaluator, made once per running service."""
    if "reevaluator" not in ctx.extras:
        settings = ctx.settings
        assert isinstance(settings, AlertSettings)
        ctx.extras["rules"] = RuleCache()
        ctx.extras["reevaluator"] = Reevaluator(ctx.db, batch=settings.reevaluation_batch)
    return ctx.extras["rules"], ctx.extras["reevaluator"]


def register(server: grpc.aio.Server, ctx: Context) -> list[str]:
    settings = ctx.settings
    assert isinstance(settings, AlertSettings)
    _, reevaluator = _parts(ctx)
    customers = ctx.extras["customers"] = CustomerClient(
        settings.customer_address, CachingSigner(signer_from(ctx.common, issuer="alert")))
    pb_grpc.add_AlertServiceServicer_to_server(AlertServicer(ctx.db, customers, reevaluator.wake), server)
    return [SERVICE_NAME]


def consumers(ctx: Context) -> list[EventConsumer]:
    rules, _ = _parts(ctx)
    return [customer_consumer(ctx.db, ctx.js), order_consumer(ctx.db, ctx.js, rules)]


def background(ctx: Context) -> list[Coroutine[Any, Any, None]]:
    settings = ctx.settings
    assert isinstance(settings, AlertSettings)
    _, reevaluator = _parts(ctx)
    return [reevaluator.run(), DigestJob(ctx.db, settings).run(),
            OrderPruner(ctx.db, interval_s=settings.retention_interval_s).run()]


async def shutdown(ctx: Context) -> None:
    customers = ctx.extras.get("customers")
    if customers is not None:
        await customers.close()


def build_spec(settings: AlertSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="alert", settings=settings or AlertSettings(),
        migrations_dir=Path(__file__).parent / "migrations", outbox_model=OutboxEvent, register=register,
        consumers=consumers, background=background, shutdown=shutdown,
    )
