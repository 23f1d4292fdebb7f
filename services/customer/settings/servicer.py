"""crowdpack.customer.v1.SettingsService."""

from __future__ import annotations

import re

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import settings_service_pb2 as pb
from crowdpack.customer.v1 import settings_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.idempotency import run_idempotent
from services.common.validation import mask_paths, to_timestamp
from services.customer.models import IdempotencyRecord, TenantSetting
from services.customer.scope import require_super_admin
from services.customer.settings.repository import DEFAULT_TENANT, load

FLAGS = ("phone_authorization", "show_user_id", "show_level", "review_required", "hide_prices_until_approved",
         "base_level_may_order")
TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def tenant_of(value: str, field: str = "tenant_id") -> str:
    value = value or DEFAULT_TENANT
    if not TENANT.match(value):
        raise InvalidArgument("must be 1-64 letters, digits, '-' or '_'", field=field)
    return value


def settings_to_proto(row: TenantSetting) -> pb.TenantSettings:
    return pb.TenantSettings(tenant_id=row.tenant_id, update_time=to_timestamp(row.updated_at),
                             **{flag: getattr(row, flag) for flag in FLAGS})


class SettingsServicer(pb_grpc.SettingsServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def GetTenantSettings(self, request: pb.GetTenantSettingsRequest,
                                context: grpc.aio.ServicerContext) -> pb.GetTenantSettingsResponse:
        tenant = tenant_of(request.tenant_id)
        async with self.db.read() as session:
            row = await load(session, tenant)
        return pb.GetTenantSettingsResponse(settings=settings_to_proto(row))

    async def UpdateTenantSettings(self, request: pb.UpdateTenantSettingsRequest,
                                   context: grpc.aio.ServicerContext) -> pb.UpdateTenantSettingsResponse:
        require_super_admin(caller_of(context), "changing tenant settings")
        tenant = tenant_of(request.settings.tenant_id, "settings.tenant_id")
        paths = mask_paths(request.update_mask, set(FLAGS))

        async def update(session: AsyncSession) -> pb.UpdateTenantSettingsResponse:
            row = await load(session, tenant, create=True)
            for path in paths:
                setattr(row, path, getattr(request.settings, path))
            row.updated_at = utcnow()
            await session.flush()
            return pb.UpdateTenantSettingsResponse(settings=settings_to_proto(row))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateTenantSettings", request,
                                    pb.UpdateTenantSettingsResponse, update)
