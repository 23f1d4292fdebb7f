"""Tenant settings rows to their message."""

from __future__ import annotations

from crowdpack.customer.v1 import settings_service_pb2 as pb
from services.common.validation import to_timestamp
from services.customer.settings.models import TenantSetting

FLAGS = ("phone_authorization", "show_user_id", "show_level", "review_required", "hide_prices_until_approved",
         "base_level_may_order")


def settings_to_proto(row: TenantSetting) -> pb.TenantSettings:
    return pb.TenantSettings(tenant_id=row.tenant_id, update_time=to_timestamp(row.updated_at),
                             **{flag: getattr(row, flag) for flag in FLAGS})
