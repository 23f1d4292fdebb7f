"""gRPC channels to the services, opened once per gateway process and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from gateway.config import GatewaySettings

# Keep connections warm between bursts; every call still sets its own deadline.
CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.max_send_message_length", 8 * 1024 * 1024)]


@dataclass
class Clients:
    channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: GatewaySettings) -> Clients:
        addresses = {"customer": settings.customer_address, "ledger": settings.ledger_address,
                     "alert": settings.alert_address}
        return cls({name: grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
                    for name, address in addresses.items()})

    def channel(self, backend: str) -> grpc.aio.Channel:
        return self.channels[backend]

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
