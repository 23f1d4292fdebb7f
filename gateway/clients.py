"""gRPC channels and stubs to the services, opened once per gateway process."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from crowdpack.alert.v1 import alert_service_pb2_grpc
from crowdpack.customer.v1 import member_service_pb2_grpc
from crowdpack.ledger.v1 import ledger_service_pb2_grpc
from gateway.config import GatewaySettings


@dataclass
class Clients:
    channels: list[grpc.aio.Channel]
    members: member_service_pb2_grpc.MemberServiceStub
    ledger: ledger_service_pb2_grpc.LedgerServiceStub
    alert: alert_service_pb2_grpc.AlertServiceStub

    @classmethod
    def connect(cls, settings: GatewaySettings) -> Clients:
        customer = grpc.aio.insecure_channel(settings.customer_address)
        ledger = grpc.aio.insecure_channel(settings.ledger_address)
        alert = grpc.aio.insecure_channel(settings.alert_address)
        return cls([customer, ledger, alert], member_service_pb2_grpc.MemberServiceStub(customer),
                   ledger_service_pb2_grpc.LedgerServiceStub(ledger), alert_service_pb2_grpc.AlertServiceStub(alert))

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
