"""Reading and writing tenant settings; a tenant without a row has the defaults."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.clock import utcnow
from services.customer.settings.models import TenantSetting

DEFAULT_TENANT = "default"


def defaults(tenant_id: str) -> TenantSetting:
    return TenantSetting(tenant_id=tenant_id, phone_authorization=True, show_user_id=False, show_level=True,
                         review_required=False, hide_prices_until_approved=False, base_level_may_order=True,
                         updated_at=utcnow())


async def load(session: AsyncSession, tenant_id: str = DEFAULT_TENANT, *, create: bool = False) -> TenantSetting:
    row = await session.get(TenantSetting, tenant_id)
    if row is None:
        row = defaults(tenant_id)
        if create:
            session.add(row)
            await session.flush()
    return row
