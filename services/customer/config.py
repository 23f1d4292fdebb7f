from pydantic_settings import SettingsConfigDict

from services.common.config import Port, ServiceSettings


class CustomerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_CUSTOMER_", extra="ignore")

    grpc_port: Port = 50051
    metrics_port: Port = 9101
