from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.auth import Role


class Principal(BaseModel):
    """Who a token stands for."""

    staff_id: str
    role: Role
    mall_ids: list[str] = []


DEV_TOKENS = {"dev-admin-token": Principal(staff_id="admin", role=Role.SUPER_ADMIN)}


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8080, ge=0, le=65535)
    customer_address: str = Field("127.0.0.1:50051", description="customer service gRPC address")
    ledger_address: str = Field("127.0.0.1:50052", description="ledger service gRPC address")
    alert_address: str = Field("127.0.0.1:50053", description="alert service gRPC address")
    api_tokens: dict[str, Principal] = Field(
        default_factory=lambda: dict(DEV_TOKENS),
        description='Bearer tokens as JSON: {"<token>": {"staff_id": "...", "role": "super_admin", "mall_ids": []}}',
    )
    rpc_timeout_s: float = Field(10.0, gt=0)
    identity_ttl_s: float = Field(60.0, gt=0, description="Seconds a signed identity forwarded to a service lives.")
    log_level: str = Field("INFO", validation_alias="CROWDPACK_LOG_LEVEL")
    log_format: str = Field("json", validation_alias="CROWDPACK_LOG_FORMAT")
