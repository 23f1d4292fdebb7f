"""Levels: defining them, moving members between them, their history; each operation in its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import level_service_pb2 as pb
from services.common.auth import Caller
from services.common.chunks import IN_LIST, chunks
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import idempotent
from services.common.pagination import Page, keyset_page
from services.customer import timeline
from services.customer.exports import MallZones
from services.customer.feature import FeatureService
from services.customer.levels import rules
from services.customer.levels.convert import change_to_proto, level_to_proto
from services.customer.levels.models import Level, LevelChange
from services.customer.levels.repository import ChangeFilter, LevelRepository
from services.customer.members.repository import MemberRepository
from services.customer.models import Customer
from services.customer.scope import visible_members

MAX_LEVELS = 10


async def _member(session: AsyncSession, member_id: int, caller: Caller) -> Customer:
    repo = MemberRepository(session)
    member = await repo.get(member_id)
    if member is None:
        raise NotFound(f"no member {member_id}", field="member_id")
    if not await repo.visible(member_id, visible_members(caller)):
        raise PermissionDenied(f"member {member_id} is outside your malls")
    return member


class LevelService(FeatureService):
    @idempotent("CreateLevel")
    async def create(self, session: AsyncSession, request: pb.CreateLevelRequest, number: int,
                     values: dict[str, Any]) -> pb.CreateLevelResponse:
        repo = LevelRepository(session)
        if await repo.count() >= MAX_LEVELS:
            raise FailedPrecondition(f"a tenant has at most {MAX_LEVELS} levels", field="level.number")
        if await repo.level(number) is not None:
            raise AlreadyExists(f"level {number} exists", field="level.number")
        if await repo.named(values["name"]) is not None:
            raise AlreadyExists(f"a level named {values['name']!r} exists", field="level.name")
        now = self.clock()
        level = Level(number=number, created_at=now, updated_at=now, **values)
        await repo.add(level)
        return pb.CreateLevelResponse(level=level_to_proto(level))

    @idempotent("UpdateLevel")
    async def update(self, session: AsyncSession, request: pb.UpdateLevelRequest, number: int,
                     values: dict[str, Any]) -> pb.UpdateLevelResponse:
        repo = LevelRepository(session)
        level = await repo.level(number)
        if level is None:
            raise NotFound(f"no level {number}", field="level.number")
        if "name" in values and values["name"] != level.name and await repo.named(values["name"]) is not None:
            raise AlreadyExists(f"a level named {values['name']!r} exists", field="level.name")
        for key, value in values.items():
            setattr(level, key, value)
        if level.upgrade_mode == pb.UPGRADE_MODE_AUTOMATIC and not level.upgrade_spend_fen:
            raise InvalidArgument("an automatic level needs a spend threshold", field="level.upgrade_spend_fen")
        level.updated_at = self.clock()
        await session.flush()
        return pb.UpdateLevelResponse(level=level_to_proto(level))

    @idempotent("DeleteLevel")
    async def delete(self, session: AsyncSession, request: pb.DeleteLevelRequest,
                     number: int) -> pb.DeleteLevelResponse:
        repo = LevelRepository(session)
        level = await repo.level(number)
        if level is None:
            raise NotFound(f"no level {number}", field="number")
        holders = await repo.holders(number)
        if holders:
            raise FailedPrecondition(f"{holders} members hold level {number}", field="number")
        response = pb.DeleteLevelResponse(level=level_to_proto(level))
        await repo.delete(level)
        return response

    async def levels(self) -> tuple[Sequence[Level], dict[int, int]]:
        """Every level, in number order, and how many members hold each."""
        async with self.db.read() as session:
            return await rules.levels(session), await LevelRepository(session).member_counts()

    @idempotent("ChangeMemberLevel")
    async def change_member_level(self, session: AsyncSession, request: pb.ChangeMemberLevelRequest, caller: Caller,
                                  member_id: int, reason: str) -> pb.ChangeMemberLevelResponse:
        member = await _member(session, member_id, caller)
        level = await LevelRepository(session).level(request.to_level) if request.to_level else None
        if request.to_level and level is None:
            raise NotFound(f"no level {request.to_level}", field="to_level")
        if member.disabled:
            raise FailedPrecondition(f"member {member_id} is disabled: no level changes", field="member_id")
        member.level_frozen = True
        moved = await rules.move(session, member, request.to_level, pb.LEVEL_CHANGE_KIND_MANUAL, reason,
                                 caller.staff_id, self.clock(), level)
        return pb.ChangeMemberLevelResponse(change=change_to_proto(moved))

    @idempotent("SetLevelFrozen")
    async def set_frozen(self, session: AsyncSession, request: pb.SetLevelFrozenRequest, caller: Caller,
                         member_id: int) -> pb.SetLevelFrozenResponse:
        member = await _member(session, member_id, caller)
        if member.level_frozen != request.frozen:
            member.level_frozen, member.updated_at = request.frozen, self.clock()
            timeline.record(session, member.id, "level_frozen" if request.frozen else "level_unfrozen",
                            caller.staff_id)
        return pb.SetLevelFrozenResponse(frozen=member.level_frozen)

    async def changes(self, caller: Caller, f: ChangeFilter, limit: int, before: int | None) -> Page[LevelChange]:
        async with self.db.read() as session:
            repo = LevelRepository(session)
            return await keyset_page(lambda n: repo.changes(f, visible_members(caller), n, before), limit)

    async def changes_for_export(self, caller: Caller, f: ChangeFilter,
                                 cap: int) -> tuple[Sequence[LevelChange], dict[int, ZoneInfo]]:
        """Up to ``cap`` + 1 changes, newest first (one more than a download holds tells it was cut), and the
        time zone of each member's registration mall (their times are written in it)."""
        async with self.db.read() as session:
            changes = await LevelRepository(session).changes(f, visible_members(caller), cap + 1)
            zones = await MallZones.read(session)
            members = sorted({c.customer_id for c in changes})
            homes: dict[int, int | None] = {}
            for chunk in chunks(members, IN_LIST):
                homes.update((row.id, row.registration_mall_id) for row in await MemberRepository(session)
                             .customers(chunk))
        return changes, {member_id: zones.of(mall_id) for member_id, mall_id in homes.items()}

    @idempotent("RunLevelExpiry")
    async def run_expiry(self, session: AsyncSession, request: pb.RunLevelExpiryRequest,
                         as_of: datetime) -> pb.RunLevelExpiryResponse:
        retained, downgraded = await rules.expire(session, as_of)
        return pb.RunLevelExpiryResponse(retained=retained, downgraded=downgraded)
