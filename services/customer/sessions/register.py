"""Adds SessionService (staff sign-in) and MemberCentreService (member sessions) to the customer server."""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import member_centre_service_pb2_grpc as centre_grpc
from crowdpack.customer.v1 import session_service_pb2_grpc as pb_grpc
from services.common.identity import signer_from
from services.common.server import Context
from services.customer.membercentre.service import MemberCentre
from services.customer.membercentre.servicer import MemberCentreServicer
from services.customer.sessions.service import SessionService
from services.customer.sessions.servicer import SessionServicer

API_AUDIENCE = "crowdpack-api"  # access tokens are for the gateway, never accepted by a service


def register_sessions(server: grpc.aio.Server, ctx: Context) -> list[str]:
    signer = signer_from(ctx.common, issuer="customer", audience=API_AUDIENCE)
    pb_grpc.add_SessionServiceServicer_to_server(SessionServicer(SessionService(ctx.db, signer)), server)
    centre_grpc.add_MemberCentreServiceServicer_to_server(MemberCentreServicer(MemberCentre(ctx.db, signer)), server)
    return ["crowdpack.customer.v1.SessionService", "crowdpack.customer.v1.MemberCentreService"]
