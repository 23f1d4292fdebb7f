"""crowdpack.alert.v1.AlertService over gRPC."""

from __future__ import annotations

from datetime import datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from services.alert.models import IdempotencyRecord, WhitelistEntry
from services.alert.repository import WhitelistRepository
from services.common.auth import caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import aware, parse_int_id, to_timestamp


def entry_to_proto(entry: WhitelistEntry) -> pb.WhitelistEntry:
    return pb.WhitelistEntry(member_id=entry.member_id, reason=entry.reason, operator_id=entry.operator_id,
                             create_time=to_timestamp(entry.created_at))


class AlertServicer(pb_grpc.AlertServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def AddWhitelistEntry(self, request: pb.AddWhitelistEntryRequest,
                                context: grpc.aio.ServicerContext) -> pb.AddWhitelistEntryResponse:
        parse_int_id(request.member_id, "member_id")
        if len(request.reason) > 500:
            raise InvalidArgument("must be at most 500 characters", field="reason")
        operator = caller_of(context).staff_id

        async def add(session: AsyncSession) -> pb.AddWhitelistEntryResponse:
            repo = WhitelistRepository(session)
            if await repo.get(request.member_id) is not None:
                raise AlreadyExists(f"member {request.member_id} is already whitelisted", field="member_id")
            entry = await repo.add(WhitelistEntry(member_id=request.member_id, reason=request.reason.strip(),
                                                  operator_id=operator, created_at=utcnow()))
            return pb.AddWhitelistEntryResponse(entry=entry_to_proto(entry))

        return await run_idempotent(self.db, IdempotencyRecord, "AddWhitelistEntry", request,
                                    pb.AddWhitelistEntryResponse, add)

    async def RemoveWhitelistEntry(self, request: pb.RemoveWhitelistEntryRequest,
                                   context: grpc.aio.ServicerContext) -> pb.RemoveWhitelistEntryResponse:
        parse_int_id(request.member_id, "member_id")

        async def remove(session: AsyncSession) -> pb.RemoveWhitelistEntryResponse:
            repo = WhitelistRepository(session)
            entry = await repo.get(request.member_id)
            if entry is None:
                raise NotFound(f"member {request.member_id} is not whitelisted", field="member_id")
            response = pb.RemoveWhitelistEntryResponse(entry=entry_to_proto(entry))
            await repo.remove(request.member_id)
            return response

        return await run_idempotent(self.db, IdempotencyRecord, "RemoveWhitelistEntry", request,
                                    pb.RemoveWhitelistEntryResponse, remove)

    async def ListWhitelistEntries(self, request: pb.ListWhitelistEntriesRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ListWhitelistEntriesResponse:
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(cursor["t"]), str(cursor["m"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument("is not a token this list returned", field="page_token") from None
        async with self.db.read() as session:
            rows = await WhitelistRepository(session).page(limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        token = encode_token({"t": aware(rows[-1].created_at).isoformat(), "m": rows[-1].member_id}) if more else ""
        return pb.ListWhitelistEntriesResponse(entries=[entry_to_proto(e) for e in rows], next_page_token=token)
