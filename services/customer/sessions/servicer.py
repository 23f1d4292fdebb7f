"""SessionService over gRPC: parses, calls the session service, converts. Passwords are never logged."""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import session_service_pb2 as pb
from crowdpack.customer.v1 import session_service_pb2_grpc as pb_grpc
from services.common.auth import Role, caller_of
from services.common.errors import PermissionDenied
from services.common.validation import to_timestamp
from services.customer.sessions.service import ACCESS_TTL_S, Issued, SessionService

SIGN_IN_CALLERS = (Role.ANONYMOUS, Role.SYSTEM)


def tokens(issued: Issued) -> tuple[pb.SessionTokens, pb.SignedInStaff]:
    return (pb.SessionTokens(access_token=issued.access_token, expires_in=ACCESS_TTL_S,
                             refresh_token=issued.refresh_token,
                             refresh_expire_time=to_timestamp(issued.refresh_expires)),
            pb.SignedInStaff(staff_id=issued.staff_id, name=issued.name, role=issued.role.value,
                             mall_ids=issued.mall_ids))


def _gatekeeper() -> None:
    """Sign-in runs for the gateway's anonymous caller or a system tool, never on someone else's behalf."""
    if caller_of().role not in SIGN_IN_CALLERS:
        raise PermissionDenied("sign-in is called by the gateway for someone not signed in", field="role")


class SessionServicer(pb_grpc.SessionServiceServicer):
    def __init__(self, service: SessionService) -> None:
        self.service = service

    async def CreateSession(self, request: pb.CreateSessionRequest,
                            context: grpc.aio.ServicerContext) -> pb.CreateSessionResponse:
        _gatekeeper()
        issued = await self.service.sign_in(request.login, request.password, caller_of().address)
        session_tokens, staff = tokens(issued)
        return pb.CreateSessionResponse(tokens=session_tokens, staff=staff)

    async def RefreshSession(self, request: pb.RefreshSessionRequest,
                             context: grpc.aio.ServicerContext) -> pb.RefreshSessionResponse:
        _gatekeeper()
        issued = await self.service.refresh(request.refresh_token)
        session_tokens, staff = tokens(issued)
        return pb.RefreshSessionResponse(tokens=session_tokens, staff=staff)

    async def RevokeSession(self, request: pb.RevokeSessionRequest,
                            context: grpc.aio.ServicerContext) -> pb.RevokeSessionResponse:
        _gatekeeper()
        await self.service.revoke(request.refresh_token)
        return pb.RevokeSessionResponse()

    async def SetStaffPassword(self, request: pb.SetStaffPasswordRequest,
                               context: grpc.aio.ServicerContext) -> pb.SetStaffPasswordResponse:
        await self.service.set_password(caller_of(), request.staff_id, request.current_password,
                                        request.new_password)
        return pb.SetStaffPasswordResponse()
