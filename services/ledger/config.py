from pydantic_settings import SettingsConfigDict

from services.common.config import Port, ServiceSettings


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_LEDGER_", extra="ignore")

    grpc_port: Port = 50052
    metrics_port: Port = 9102
