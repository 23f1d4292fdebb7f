"""Tenant settings: reading them (a tenant without a row has the defaults) and changing them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import settings_service_pb2 as pb
from services.common.idempotency import idempotent
from services.customer.feature import FeatureService
from services.customer.settings.convert import settings_to_proto
from services.customer.settings.models import TenantSetting
from services.customer.settings.repository import load


class SettingsService(FeatureService):
    async def get(self, tenant: str) -> TenantSetting:
        async with self.db.read() as session:
            return await load(session, tenant)

    @idempotent("UpdateTenantSettings")
    async def update(self, session: AsyncSession, request: pb.UpdateTenantSettingsRequest, tenant: str,
                     paths: list[str]) -> pb.UpdateTenantSettingsResponse:
        row = await load(session, tenant, create=True)
        for path in paths:
            setattr(row, path, getattr(request.settings, path))
        row.updated_at = self.clock()
        await session.flush()
        return pb.UpdateTenantSettingsResponse(settings=settings_to_proto(row))
