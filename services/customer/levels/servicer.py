"""crowdpack.customer.v1.LevelService."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import level_service_pb2 as pb
from crowdpack.customer.v1 import level_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.auth import Caller
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import (
    MAX_MONEY, aware, bounded_text, known_enum, mask_paths, parse_int_id, to_timestamp,
)
from services.customer import timeline
from services.customer.exports import csv_bytes
from services.customer.levels import rules
from services.customer.members.repository import MemberRepository
from services.customer.models import Customer, IdempotencyRecord, Level, LevelChange
from services.customer.scope import require_admin, require_super_admin, visible_members

MAX_LEVELS = 10
LEVEL_FIELDS = {"name", "discount_permille", "upgrade_mode", "upgrade_spend_fen", "validity_months",
                "retain_spend_fen"}


def level_to_proto(level: Level, members: int = 0) -> pb.Level:
    return pb.Level(number=level.number, name=level.name, discount_permille=level.discount_permille,
                    upgrade_mode=level.upgrade_mode, upgrade_spend_fen=level.upgrade_spend_fen,
                    validity_months=level.validity_months, retain_spend_fen=level.retain_spend_fen,
                    member_count=members)


def change_to_proto(change: LevelChange) -> pb.LevelChange:
    return pb.LevelChange(change_id=str(change.id), member_id=str(change.customer_id), from_level=change.from_level,
                          to_level=change.to_level, kind=change.kind, reason=change.reason,
                          operator_id=change.operator_id, create_time=to_timestamp(change.created_at))


def level_values(level: pb.Level, paths: set[str], prefix: str = "level.") -> dict[str, object]:
    values: dict[str, object] = {}
    if "name" in paths:
        name = bounded_text(level.name, prefix + "name", 50)
        if not name:
            raise InvalidArgument("is required", field=prefix + "name")
        values["name"] = name
    if "discount_permille" in paths:
        if not 1 <= level.discount_permille <= 1000:
            raise InvalidArgument("must be 1..1000 (950 = 95%)", field=prefix + "discount_permille")
        values["discount_permille"] = level.discount_permille
    if "upgrade_mode" in paths:
        values["upgrade_mode"] = known_enum(pb.UpgradeMode, level.upgrade_mode, prefix + "upgrade_mode",
                                            allow_unspecified=False)
    for money in ("upgrade_spend_fen", "retain_spend_fen"):
        if money in paths:
            if not 0 <= getattr(level, money) <= MAX_MONEY:
                raise InvalidArgument("must be 0..9e15 fen", field=prefix + money)
            values[money] = getattr(level, money)
    if "validity_months" in paths:
        if not 0 <= level.validity_months <= 120:
            raise InvalidArgument("must be 0..120 (0 = never expires)", field=prefix + "validity_months")
        values["validity_months"] = level.validity_months
    return values


def time_range(from_ts: Timestamp, to_ts: Timestamp, has_from: bool,
               has_to: bool) -> tuple[datetime | None, datetime | None]:
    start = aware(from_ts.ToDatetime()) if has_from else None
    end = aware(to_ts.ToDatetime()) if has_to else None
    if start and end and start > end:
        raise InvalidArgument("must not be after to_time", field="from_time")
    return start, end


class LevelServicer(pb_grpc.LevelServiceServicer):
    def __init__(self, db: Database, export_max_rows: int) -> None:
        self.db = db
        self.export_max_rows = export_max_rows

    async def CreateLevel(self, request: pb.CreateLevelRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateLevelResponse:
        require_super_admin(caller_of(context), "defining levels")
        number = request.level.number
        if not 1 <= number <= MAX_LEVELS:
            raise InvalidArgument("must be 1..10", field="level.number")
        values = level_values(request.level, LEVEL_FIELDS)
        if values["upgrade_mode"] == pb.UPGRADE_MODE_AUTOMATIC and not request.level.upgrade_spend_fen:
            raise InvalidArgument("an automatic level needs a spend threshold", field="level.upgrade_spend_fen")

        async def create(session: AsyncSession) -> pb.CreateLevelResponse:
            count = await session.scalar(select(func.count()).select_from(Level))
            if count >= MAX_LEVELS:
                raise FailedPrecondition(f"a tenant has at most {MAX_LEVELS} levels", field="level.number")
            if await session.get(Level, number) is not None:
                raise AlreadyExists(f"level {number} exists", field="level.number")
            if await session.scalar(select(Level.number).where(Level.name == values["name"])) is not None:
                raise AlreadyExists(f"a level named {values['name']!r} exists", field="level.name")
            now = utcnow()
            level = Level(number=number, created_at=now, updated_at=now, **values)
            session.add(level)
            await session.flush()
            return pb.CreateLevelResponse(level=level_to_proto(level))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateLevel", request, pb.CreateLevelResponse, create)

    async def UpdateLevel(self, request: pb.UpdateLevelRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateLevelResponse:
        require_super_admin(caller_of(context), "changing levels")
        number = request.level.number
        if not 1 <= number <= MAX_LEVELS:
            raise InvalidArgument("must be 1..10", field="level.number")
        values = level_values(request.level, set(mask_paths(request.update_mask, LEVEL_FIELDS)))

        async def update(session: AsyncSession) -> pb.UpdateLevelResponse:
            level = await session.get(Level, number)
            if level is None:
                raise NotFound(f"no level {number}", field="level.number")
            if "name" in values and values["name"] != level.name and await session.scalar(
                    select(Level.number).where(Level.name == values["name"])) is not None:
                raise AlreadyExists(f"a level named {values['name']!r} exists", field="level.name")
            for key, value in values.items():
                setattr(level, key, value)
            if level.upgrade_mode == pb.UPGRADE_MODE_AUTOMATIC and not level.upgrade_spend_fen:
                raise InvalidArgument("an automatic level needs a spend threshold", field="level.upgrade_spend_fen")
            level.updated_at = utcnow()
            await session.flush()
            return pb.UpdateLevelResponse(level=level_to_proto(level))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateLevel", request, pb.UpdateLevelResponse, update)

    async def DeleteLevel(self, request: pb.DeleteLevelRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteLevelResponse:
        require_super_admin(caller_of(context), "deleting levels")
        number = request.number
        if not 1 <= number <= MAX_LEVELS:
            raise InvalidArgument("must be 1..10", field="number")

        async def delete(session: AsyncSession) -> pb.DeleteLevelResponse:
            level = await session.get(Level, number)
            if level is None:
                raise NotFound(f"no level {number}", field="number")
            holders = await session.scalar(select(func.count()).select_from(Customer).where(
                Customer.level == number, Customer.deleted_at.is_(None)))
            if holders:
                raise FailedPrecondition(f"{holders} members hold level {number}", field="number")
            response = pb.DeleteLevelResponse(level=level_to_proto(level))
            await session.delete(level)
            return response

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteLevel", request, pb.DeleteLevelResponse, delete)

    async def ListLevels(self, request: pb.ListLevelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListLevelsResponse:
        limit = page_size(request.page_size, default=MAX_LEVELS)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else 0
        if not isinstance(after, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        async with self.db.read() as session:
            defined = await rules.levels(session)
            counts = dict((await session.execute(
                select(Customer.level, func.count()).where(Customer.deleted_at.is_(None), Customer.level > 0)
                .group_by(Customer.level))).all())
        rest = [lv for lv in defined if lv.number > after]
        token = encode_token({"after": rest[limit - 1].number}) if len(rest) > limit else ""
        return pb.ListLevelsResponse(levels=[level_to_proto(lv, counts.get(lv.number, 0)) for lv in rest[:limit]],
                                     next_page_token=token)

    async def ChangeMemberLevel(self, request: pb.ChangeMemberLevelRequest,
                                context: grpc.aio.ServicerContext) -> pb.ChangeMemberLevelResponse:
        caller = caller_of(context)
        require_admin(caller, "changing a member's level")
        member_id = parse_int_id(request.member_id, "member_id")
        if not 0 <= request.to_level <= MAX_LEVELS:
            raise InvalidArgument("must be 0..10 (0 removes the level)", field="to_level")
        reason = bounded_text(request.reason, "reason", 200)

        async def change(session: AsyncSession) -> pb.ChangeMemberLevelResponse:
            member = await self._member(session, member_id, caller)
            level = await session.get(Level, request.to_level) if request.to_level else None
            if request.to_level and level is None:
                raise NotFound(f"no level {request.to_level}", field="to_level")
            if member.disabled:
                raise FailedPrecondition(f"member {member_id} is disabled: no level changes", field="member_id")
            member.level_frozen = True
            moved = await rules.move(session, member, request.to_level, pb.LEVEL_CHANGE_KIND_MANUAL, reason,
                                     caller.staff_id, utcnow(), level)
            return pb.ChangeMemberLevelResponse(change=change_to_proto(moved))

        return await run_idempotent(self.db, IdempotencyRecord, "ChangeMemberLevel", request,
                                    pb.ChangeMemberLevelResponse, change)

    async def _member(self, session: AsyncSession, member_id: int, caller: Caller) -> Customer:
        repo = MemberRepository(session)
        member = await repo.get(member_id)
        if member is None:
            raise NotFound(f"no member {member_id}", field="member_id")
        if not await repo.visible(member_id, visible_members(caller)):
            raise PermissionDenied(f"member {member_id} is outside your malls")
        return member

    async def SetLevelFrozen(self, request: pb.SetLevelFrozenRequest,
                             context: grpc.aio.ServicerContext) -> pb.SetLevelFrozenResponse:
        caller = caller_of(context)
        require_admin(caller, "freezing a member's level")
        member_id = parse_int_id(request.member_id, "member_id")

        async def freeze(session: AsyncSession) -> pb.SetLevelFrozenResponse:
            member = await self._member(session, member_id, caller)
            if member.level_frozen != request.frozen:
                member.level_frozen, member.updated_at = request.frozen, utcnow()
                timeline.record(session, member.id, "level_frozen" if request.frozen else "level_unfrozen",
                                caller.staff_id)
            return pb.SetLevelFrozenResponse(frozen=member.level_frozen)

        return await run_idempotent(self.db, IdempotencyRecord, "SetLevelFrozen", request,
                                    pb.SetLevelFrozenResponse, freeze)

    def _changes_query(self, member_id: str, start: datetime | None, end: datetime | None, kind: int,
                       to_level: int, caller: Caller) -> Select[tuple[LevelChange]]:
        query = select(LevelChange).join(Customer, Customer.id == LevelChange.customer_id) \
            .where(visible_members(caller))
        if member_id:
            query = query.where(LevelChange.customer_id == parse_int_id(member_id, "member_id"))
        if start:
            query = query.where(LevelChange.created_at >= start)
        if end:
            query = query.where(LevelChange.created_at <= end)
        if kind:
            query = query.where(LevelChange.kind == kind)
        if to_level:
            query = query.where(LevelChange.to_level == to_level)
        return query

    async def ListLevelChanges(self, request: pb.ListLevelChangesRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListLevelChangesResponse:
        limit = page_size(request.page_size)
        kind = known_enum(pb.LevelChangeKind, request.kind, "kind")
        if not 0 <= request.to_level <= MAX_LEVELS:
            raise InvalidArgument("must be 0..10", field="to_level")
        start, end = time_range(request.from_time, request.to_time, request.HasField("from_time"),
                                request.HasField("to_time"))
        cursor = decode_token(request.page_token)
        before = cursor.get("before") if cursor else None
        if cursor is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        query = self._changes_query(request.member_id, start, end, kind, request.to_level, caller_of(context))
        if before is not None:
            query = query.where(LevelChange.id < before)
        async with self.db.read() as session:
            rows = (await session.scalars(query.order_by(LevelChange.id.desc()).limit(limit + 1))).all()
        page = rows[:limit]
        token = encode_token({"before": page[-1].id}) if len(rows) > limit else ""
        return pb.ListLevelChangesResponse(changes=[change_to_proto(c) for c in page], next_page_token=token)

    async def ExportLevelChanges(self, request: pb.ExportLevelChangesRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ExportLevelChangesResponse:
        caller = caller_of(context)
        require_super_admin(caller, "downloading level changes")
        if request.max_rows < 0:
            raise InvalidArgument("must not be negative", field="max_rows")
        cap = min(request.max_rows or self.export_max_rows, self.export_max_rows)
        start, end = time_range(request.from_time, request.to_time, request.HasField("from_time"),
                                request.HasField("to_time"))
        query = self._changes_query(request.member_id, start, end, 0, 0, caller)
        async with self.db.read() as session:
            rows = (await session.scalars(query.order_by(LevelChange.id.desc()).limit(cap + 1))).all()
        data = csv_bytes(
            ["change_id", "member_id", "from_level", "to_level", "kind", "reason", "operator_id", "time"],
            [(c.id, c.customer_id, c.from_level, c.to_level, rules.KIND_NAMES[c.kind], c.reason, c.operator_id,
              aware(c.created_at).isoformat()) for c in rows[:cap]])
        return pb.ExportLevelChangesResponse(csv=data, row_count=min(len(rows), cap), truncated=len(rows) > cap)

    async def RunLevelExpiry(self, request: pb.RunLevelExpiryRequest,
                             context: grpc.aio.ServicerContext) -> pb.RunLevelExpiryResponse:
        require_super_admin(caller_of(context), "running level expiry")
        as_of = aware(request.as_of_time.ToDatetime()) if request.HasField("as_of_time") else utcnow()

        async def run(session: AsyncSession) -> pb.RunLevelExpiryResponse:
            retained, downgraded = await rules.expire(session, as_of)
            return pb.RunLevelExpiryResponse(retained=retained, downgraded=downgraded)

        return await run_idempotent(self.db, IdempotencyRecord, "RunLevelExpiry", request,
                                    pb.RunLevelExpiryResponse, run)
