from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import Port, ServiceSettings


class AlertSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_ALERT_", extra="ignore")

    grpc_port: Port = 50053
    metrics_port: Port = 9103
    customer_address: str = Field("127.0.0.1:50051", description="The customer service (disabling a member).")
    digest_webhook_url: str = Field("", description="Where each mall's daily digest is POSTed as JSON; empty: "
                                                    "published on NATS only.")
    digest_hour: int = Field(10, ge=0, le=23, description="Local hour (mall time zone) the daily digest is made.")
    digest_check_s: float = Field(30.0, gt=0, description="Seconds between looks for malls whose digest is due.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Seconds a webhook POST may take.")
    webhook_retry_first_s: float = Field(1.0, gt=0, description="First back-off after a failed webhook POST.")
    webhook_retry_max_s: float = Field(600.0, gt=0, description="Longest back-off between webhook POSTs.")
    reevaluation_batch: int = Field(1000, ge=1, description="Members per transaction of a rule's re-evaluation.")
