"""The one place the alert service calls the customer service (disabling a member from an alert).

It acts for the staff member who asked: their identity is forwarded, signed by the alert service with the
identity key (services/common/identity.py), so the customer service verifies it and checks their role and
malls as for any other call.
"""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from services.common.auth import Caller
from services.common.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.common.identity import CachingSigner, Signer

TIMEOUT_S = 10.0
PASSED_ON: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound, grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument, grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


class CustomerClient:
    def __init__(self, address: str, signer: Signer | CachingSigner) -> None:
        self.address = address
        self.signer = signer
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> member_grpc.MemberServiceStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        return member_grpc.MemberServiceStub(self._channel)

    async def disable_member(self, member_id: str, request_id: str, caller: Caller) -> None:
        """Disables the member's card (idempotent per ``request_id``); the customer service emits its event."""
        try:
            await self._stub().SetMemberDisabled(
                member_pb.SetMemberDisabledRequest(request_id=request_id, member_id=member_id, disabled=True),
                metadata=self.signer.metadata(caller), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            passed = PASSED_ON.get(err.code())
            if passed is not None:
                raise passed(f"customer service: {err.details()}") from None
            raise Unavailable(f"the customer service did not answer ({err.code().name}); try again") from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
