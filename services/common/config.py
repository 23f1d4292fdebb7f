"""Typed configuration from the environment (pydantic-settings).

Settings shared by every process read ``CROWDPACK_*``; a service's own settings read
``CROWDPACK_<SERVICE>_*``. Every setting has a default that works on one machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=0, le=65535)]


class CommonSettings(BaseSettings):
    """Settings every Crowdpack process shares."""

    model_config = SettingsConfigDict(env_prefix="CROWDPACK_", extra="ignore")

    state_dir: Path = Field(Path("var"), description="Folder for SQLite files, NATS data and snapshots.")
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server with JetStream.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field("json", description="json (one object per line) or console.")
    identity_public_keys: str = Field(
        "", description="PEM Ed25519 public key(s) whose signed identities the services trust (several may follow "
                        "each other while a key is rotated). Empty: the file setting, else <state_dir>/keys/.")
    identity_public_key_file: Path | None = Field(None, description="A file holding identity_public_keys.")
    identity_private_key: str = Field(
        "", description="PEM Ed25519 private key that signs identities (gateway, services calling each other, "
                        "operator tools). Empty: the file setting, else <state_dir>/keys/.")
    identity_private_key_file: Path | None = Field(None, description="A file holding identity_private_key.")


class ServiceSettings(BaseSettings):
    """Settings of one gRPC service; subclasses set the env prefix and default ports."""

    model_config = SettingsConfigDict(extra="ignore")

    grpc_host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    grpc_port: Port = Field(0, description="gRPC port; 0 picks a free one.")
    metrics_port: Port = Field(0, description="Prometheus /metrics port; 0 picks a free one.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL. Empty means SQLite in WAL mode at <state_dir>/<service>.db."
    )
    shutdown_grace_s: float = Field(5.0, gt=0, description="Seconds in-flight RPCs get on SIGTERM.")
    outbox_poll_s: float = Field(0.5, gt=0, description="How often the outbox relay looks for unsent events.")
    startup_retry_max_s: float = Field(30.0, gt=0, description="Longest wait between start-up retries.")
    startup_lock_wait_s: float = Field(
        60.0, gt=0, description="SQLite: how long start-up waits for a write lock another connection holds, then exits."
    )
    idempotency_retention_days: int = Field(30, ge=1, description="Days a request_id's first answer is kept.")
    processed_retention_days: int = Field(30, ge=1, description="Days a consumer remembers a message id.")
    outbox_retention_days: int = Field(7, ge=1, description="Days a published outbox row is kept.")
    retention_interval_s: float = Field(3600.0, gt=0, description="Seconds between retention passes.")


def database_url_for(service: str, settings: ServiceSettings, common: CommonSettings) -> str:
    """The service's database URL: its own setting, or a SQLite file in the state folder."""
    if settings.database_url:
        return settings.database_url
    path = (common.state_dir / f"{service}.db").resolve()
    return f"sqlite+aiosqlite:///{path}"


def describe_settings_error(err: ValidationError) -> str:
    """One line naming the environment variable that is wrong."""
    first = err.errors()[0]
    classes: list[type[BaseSettings]] = [CommonSettings, *ServiceSettings.__subclasses__()]
    prefix = next((c.model_config.get("env_prefix", "") for c in classes if c.__name__ == err.title), "")
    name = (prefix + "_".join(str(p) for p in first["loc"])).upper()
    return f"{name}: {first['msg']}"
