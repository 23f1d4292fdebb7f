"""MemberCentreService over gRPC: parses, calls the member centre, converts."""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import member_centre_service_pb2 as pb
from crowdpack.customer.v1 import member_centre_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.customer.membercentre.service import MEMBER_TTL_S, MemberCentre


class MemberCentreServicer(pb_grpc.MemberCentreServiceServicer):
    def __init__(self, centre: MemberCentre) -> None:
        self.centre = centre

    async def CreateMemberSession(self, request: pb.CreateMemberSessionRequest,
                                  context: grpc.aio.ServicerContext) -> pb.CreateMemberSessionResponse:
        token, member_id = await self.centre.create_session(caller_of(), request.channel, request.channel_user_id,
                                                            request.phone)
        return pb.CreateMemberSessionResponse(access_token=token, expires_in=MEMBER_TTL_S, member_id=member_id)

    async def GetMemberProfile(self, request: pb.GetMemberProfileRequest,
                               context: grpc.aio.ServicerContext) -> pb.GetMemberProfileResponse:
        return pb.GetMemberProfileResponse(profile=await self.centre.profile(caller_of(), request.member_id))
