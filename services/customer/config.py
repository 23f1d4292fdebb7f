from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import Port, ServiceSettings


class CustomerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDPACK_CUSTOMER_", extra="ignore")

    grpc_port: Port = 50051
    metrics_port: Port = 9101
    export_max_rows: int = Field(10_000, ge=1, le=1_000_000, description="Most rows one CSV download holds.")
    crowd_refresh_hour: int = Field(3, ge=0, le=23, description="Hour (in each mall's time zone) of the daily "
                                                                "crowd package refresh.")
    crowd_timezone: str = Field("Asia/Shanghai", description="Zone of member-level dates (card open, level expiry) "
                                                             "in the crowd index.")
    crowd_refresh_poll_s: float = Field(1.0, gt=0, description="How often the crowd refresher looks for work.")
