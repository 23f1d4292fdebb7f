"""How the alert service is put together: settings, migrations, servicers, consumers."""

from __future__ import annotations

from pathlib import Path

import grpc

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from services.alert.config import AlertSettings
from services.alert.models import OutboxEvent
from services.alert.servicer import AlertServicer
from services.common.server import Context, ServiceSpec

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AlertService"].full_name


def register(server: grpc.aio.Server, ctx: Context) -> list[str]:
    pb_grpc.add_AlertServiceServicer_to_server(AlertServicer(ctx.db), server)
    return [SERVICE_NAME]


def build_spec(settings: AlertSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="alert", settings=settings or AlertSettings(),
        migrations_dir=Path(__file__).parent / "migrations", outbox_model=OutboxEvent, register=register,
    )
