"""The NATS JetStream connection: connect with retry, create streams idempotently."""

from __future__ import annotations

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from services.common.events import STREAMS
from services.common.logs import get_logger
from services.common.retry import retry_forever

log = get_logger(__name__)

DUPLICATE_WINDOW_S = 120.0


async def _disconnected() -> None:
    log.warning("nats disconnected")


async def _reconnected() -> None:
    log.info("nats reconnected")


async def connect(url: str, name: str, *, max_delay_s: float = 30.0) -> tuple[Client, JetStreamContext]:
    """Connects to NATS (retrying with backoff until it answers) and makes sure every stream exists."""

    async def attempt() -> tuple[Client, JetStreamContext]:
        connected = False

        async def on_error(err: Exception) -> None:
            if connected:  # before the first connection, retry_forever reports the failure once
                log.warning("nats error", error=str(err))

        # One try per attempt, so a missing server surfaces here and is retried with backoff ...
        nc = await nats.connect(
            url, name=name, connect_timeout=2, allow_reconnect=True, max_reconnect_attempts=1,
            reconnect_time_wait=0.5, disconnected_cb=_disconnected, reconnected_cb=_reconnected,
            error_cb=on_error,
        )
        # ... and once connected, reconnect for ever.
        nc.options["max_reconnect_attempts"] = -1
        connected = True
        try:
            js = nc.jetstream()
            await ensure_streams(js)
        except BaseException:
            await nc.close()
            raise
        return nc, js

    return await retry_forever(attempt, what=f"nats {url}", max_delay_s=max_delay_s)


async def ensure_streams(js: JetStreamContext) -> None:
    """Creates each stream, or brings an existing one to the configuration in code."""
    for stream in STREAMS:
        config = StreamConfig(
            name=stream.name, subjects=list(stream.subjects), storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
