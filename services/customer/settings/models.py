"""Tenant settings (a tenant without a row has the defaults)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import Base


class TenantSetting(Base):
    """The member settings of one tenant (one row per tenant id)."""

    __tablename__ = "tenant_setting"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_authorization: Mapped[bool] = mapped_column(Boolean, default=True)
    show_user_id: Mapped[bool] = mapped_column(Boolean, default=False)
    show_level: Mapped[bool] = mapped_column(Boolean, default=True)
    review_required: Mapped[bool] = mapped_column(Boolean, default=False)
    hide_prices_until_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    base_level_may_order: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
