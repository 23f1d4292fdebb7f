"""How the customer service is put together: settings, migrations, servicers, consumers."""

from __future__ import annotations

from pathlib import Path

import grpc

from crowdpack.customer.v1 import customer_service_pb2 as pb
from crowdpack.customer.v1 import customer_service_pb2_grpc as pb_grpc
from services.common.server import Context, ServiceSpec
from services.customer.config import CustomerSettings
from services.customer.models import OutboxEvent
from services.customer.servicer import CustomerServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CustomerService"].full_name


def register(server: grpc.aio.Server, ctx: Context) -> list[str]:
    pb_grpc.add_CustomerServiceServicer_to_server(CustomerServicer(ctx.db), server)
    return [SERVICE_NAME]


def build_spec(settings: CustomerSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="customer", settings=settings or CustomerSettings(),
        migrations_dir=Path(__file__).parent / "migrations", outbox_model=OutboxEvent, register=register,
    )
