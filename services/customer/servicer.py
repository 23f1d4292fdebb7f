"""crowdpack.customer.v1.CustomerService over gRPC."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import customer_service_pb2 as pb
from crowdpack.customer.v1 import customer_service_pb2_grpc as pb_grpc
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import run_idempotent
from services.common.outbox import add_event, utcnow
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import known_enum, parse_int_id, to_timestamp
from services.customer.models import IdempotencyRecord, Member, OutboxEvent
from services.customer.repository import MemberRepository
from services.customer.validation import bounded_text, normalize_email, normalize_phone


def member_to_proto(member: Member) -> pb.Member:
    return pb.Member(
        member_id=str(member.id), phone=member.phone or "", email=member.email or "", name=member.name,
        gender=member.gender, create_time=to_timestamp(member.created_at),
        update_time=to_timestamp(member.updated_at),
    )


class CustomerServicer(pb_grpc.CustomerServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def CreateMember(self, request: pb.CreateMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.CreateMemberResponse:
        phone = normalize_phone(request.phone)
        email = normalize_email(request.email)
        if phone is None and email is None:
            raise InvalidArgument("phone or email is required (at least one)", field="phone")
        name = bounded_text(request.name, "name", 100)
        gender = known_enum(pb.Gender, request.gender, "gender")

        async def create(session: AsyncSession) -> pb.CreateMemberResponse:
            repo = MemberRepository(session)
            if phone and await repo.id_by_phone(phone) is not None:
                raise AlreadyExists("a member with this phone exists", field="phone")
            if email and await repo.id_by_email(email) is not None:
                raise AlreadyExists("a member with this email exists", field="email")
            now = utcnow()
            member = await repo.add(Member(phone=phone, email=email, name=name, gender=gender or pb.GENDER_UNKNOWN,
                                           created_at=now, updated_at=now))
            add_event(session, OutboxEvent, events.MemberCreated(
                member_id=str(member.id), phone=phone or "", email=email or "", create_time=to_timestamp(now)))
            return pb.CreateMemberResponse(member=member_to_proto(member))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateMember", request,
                                    pb.CreateMemberResponse, create)

    async def GetMember(self, request: pb.GetMemberRequest, context: grpc.aio.ServicerContext) -> pb.GetMemberResponse:
        member_id = parse_int_id(request.member_id, "member_id")
        async with self.db.read() as session:
            member = await MemberRepository(session).get(member_id)
        if member is None:
            raise NotFound(f"no member {member_id}", field="member_id")
        return pb.GetMemberResponse(member=member_to_proto(member))

    async def ListMembers(self, request: pb.ListMembersRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListMembersResponse:
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        before = cursor.get("before") if cursor else None
        if before is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        async with self.db.read() as session:
            members = await MemberRepository(session).page(limit + 1, before)
        more = len(members) > limit
        members = members[:limit]
        token = encode_token({"before": members[-1].id}) if more else ""
        return pb.ListMembersResponse(members=[member_to_proto(m) for m in members], next_page_token=token)
