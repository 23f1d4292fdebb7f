from pydantic_settings import SettingsConfigDict

from services.common.config import Port, ServiceSettings


class AlertSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_ALERT_", extra="ignore")

    grpc_port: Port = 50053
    metrics_port: Port = 9103
