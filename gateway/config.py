from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8080, ge=0, le=65535)
    customer_address: str = Field("127.0.0.1:50051", description="customer service gRPC address")
    ledger_address: str = Field("127.0.0.1:50052", description="ledger service gRPC address")
    alert_address: str = Field("127.0.0.1:50053", description="alert service gRPC address")
    rpc_timeout_s: float = Field(10.0, gt=0, description="Deadline of each call to a service.")
    upload_timeout_s: float = Field(600.0, gt=0, description="Deadline of an import file upload.")
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="Largest JSON body accepted (413 beyond).")
    max_upload_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Largest import file accepted (413 beyond).")
    identity_ttl_s: float = Field(60.0, gt=0, description="Seconds a signed identity forwarded to a service lives.")
    channel_api_keys: dict[str, str] = Field(
        default_factory=dict, description='The mini-programs\' API keys as sha256 hex digests, JSON by channel: '
                                          '{"wechat": "<sha256 of the key>", "alipay": ..., "douyin": ...}.')
    cors_origins: list[str] = Field(
        default_factory=list, description='Origins allowed by CORS, as JSON (["https://admin.example.com"]); none by '
                                          "default.")
    log_level: str = Field("INFO", validation_alias="CROWDPACK_LOG_LEVEL")
    log_format: str = Field("json", validation_alias="CROWDPACK_LOG_FORMAT")
