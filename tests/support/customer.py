"""What customer-service tests share: caller identities, the stubs of a running service, error helpers.

The ``customer`` fixture that starts the service is in tests/integration/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from crowdpack.customer.v1 import (
    level_service_pb2_grpc,
    member_service_pb2_grpc,
    organization_service_pb2_grpc,
    settings_service_pb2_grpc,
)
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from services.common.auth import Caller, Role
from services.common.db import Database
from tests.support.identity import signed

SUPER = signed(Caller(staff_id="super-1", role=Role.SUPER_ADMIN))


def mall_admin(*mall_ids: str) -> tuple[tuple[str, str], ...]:
    return signed(Caller(staff_id="mall-admin-1", role=Role.MALL_ADMIN, mall_ids=frozenset(mall_ids)))


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


@dataclass
class CustomerStubs:
    members: member_service_pb2_grpc.MemberServiceStub
    org: organization_service_pb2_grpc.OrganizationServiceStub
    levels: level_service_pb2_grpc.LevelServiceStub
    settings: settings_service_pb2_grpc.SettingsServiceStub
    channel: grpc.aio.Channel
    db: Database

    async def mall(self, name: str) -> str:
        reply = await self.org.CreateMall(org_pb.CreateMallRequest(request_id=f"mall-{name}", name=name),
                                          metadata=SUPER)
        return reply.mall.mall_id


    @classmethod
    def on(cls, channel: grpc.aio.Channel, db: Database) -> CustomerStubs:
        return cls(member_service_pb2_grpc.MemberServiceStub(channel),
                   organization_service_pb2_grpc.OrganizationServiceStub(channel),
                   level_service_pb2_grpc.LevelServiceStub(channel),
                   settings_service_pb2_grpc.SettingsServiceStub(channel), channel, db)


async def rpc_error(call) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err
    raise AssertionError("the call succeeded")


def violated_field(err: grpc.aio.AioRpcError) -> str | None:
    """The field a BadRequest detail of the error names (None when it names none)."""
    status = rpc_status.from_call(err)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    return None


def error_reason(err: grpc.aio.AioRpcError) -> tuple[str, str, dict[str, str]] | None:
    """The reason, domain and metadata of the error's google.rpc.ErrorInfo detail (None when it has none)."""
    status = rpc_status.from_call(err)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, info.domain, dict(info.metadata)
    return None
