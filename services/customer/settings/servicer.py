"""crowdpack.customer.v1.SettingsService."""

from __future__ import annotations

import re

import grpc

from crowdpack.customer.v1 import settings_service_pb2 as pb
from crowdpack.customer.v1 import settings_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.validation import mask_paths
from services.customer.scope import require_super_admin
from services.customer.settings.convert import FLAGS, settings_to_proto
from services.customer.settings.repository import DEFAULT_TENANT
from services.customer.settings.service import SettingsService

TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def tenant_of(value: str, field: str = "tenant_id") -> str:
    value = value or DEFAULT_TENANT
    if not TENANT.match(value):
        raise InvalidArgument("must be 1-64 letters, digits, '-' or '_'", field=field)
    return value


class SettingsServicer(pb_grpc.SettingsServiceServicer):
    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self.service = SettingsService(db, clock)

    async def GetTenantSettings(self, request: pb.GetTenantSettingsRequest,
                                context: grpc.aio.ServicerContext) -> pb.GetTenantSettingsResponse:
        row = await self.service.get(tenant_of(request.tenant_id))
        return pb.GetTenantSettingsResponse(settings=settings_to_proto(row))

    async def UpdateTenantSettings(self, request: pb.UpdateTenantSettingsRequest,
                                   context: grpc.aio.ServicerContext) -> pb.UpdateTenantSettingsResponse:
        require_super_admin(caller_of(context), "changing tenant settings")
        tenant = tenant_of(request.settings.tenant_id, "settings.tenant_id")
        paths = mask_paths(request.update_mask, set(FLAGS))
        return await self.service.update(request, tenant, paths)
