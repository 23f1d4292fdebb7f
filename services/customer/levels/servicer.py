"""crowdpack.customer.v1.LevelService."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crowdpack.customer.v1 import level_service_pb2 as pb
from crowdpack.customer.v1 import level_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.downloads import csv_download, local_time
from services.common.errors import InvalidArgument
from services.common.pagination import before_id, decode_token, encode_token, page_size
from services.common.validation import MAX_MONEY, aware, bounded_text, known_enum, mask_paths, optional_id, parse_int_id
from services.customer.levels.convert import change_to_proto, level_to_proto
from services.customer.levels.repository import ChangeFilter
from services.customer.levels.service import MAX_LEVELS, LevelService
from services.customer.scope import require_admin, require_super_admin

KIND_TEXT: dict[int, str] = {pb.LEVEL_CHANGE_KIND_UPGRADE: "升级", pb.LEVEL_CHANGE_KIND_RETAIN: "保级",
                             pb.LEVEL_CHANGE_KIND_DOWNGRADE: "降级", pb.LEVEL_CHANGE_KIND_MANUAL: "手动调整"}
LEVEL_FIELDS = {"name", "discount_permille", "upgrade_mode", "upgrade_spend_fen", "validity_months",
                "retain_spend_fen"}


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
    def __init__(self, db: Database, export_max_rows: int, clock: Clock = utcnow) -> None:
        self.service = LevelService(db, clock)
        self.export_max_rows = export_max_rows
        self.clock = clock

    async def CreateLevel(self, request: pb.CreateLevelRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateLevelResponse:
        require_super_admin(caller_of(context), "defining levels")
        number = request.level.number
        if not 1 <= number <= MAX_LEVELS:
            raise InvalidArgument("must be 1..10", field="level.number")
        values = level_values(request.level, LEVEL_FIELDS)
        if values["upgrade_mode"] == pb.UPGRADE_MODE_AUTOMATIC and not request.level.upgrade_spend_fen:
            raise InvalidArgument("an automatic level needs a spend threshold", field="level.upgrade_spend_fen")
        return await self.service.create(request, number, values)

    async def UpdateLevel(self, request: pb.UpdateLevelRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateLevelResponse:
        require_super_admin(caller_of(context), "changing levels")
        number = request.level.number
        if not 1 <= number <= MAX_LEVELS:
            raise InvalidArgument("must be 1..10", field="level.number")
        values = level_values(request.level, set(mask_paths(request.update_mask, LEVEL_FIELDS)))
        return await self.service.update(request, number, values)

    async def DeleteLevel(self, request: pb.DeleteLevelRequest,
                          context: grpc.aio.ServicerContext) -> pb.DeleteLevelResponse:
        require_super_admin(caller_of(context), "deleting levels")
        number = request.number
        if not 1 <= number <= MAX_LEVELS:
            raise InvalidArgument("must be 1..10", field="number")
        return await self.service.delete(request, number)

    async def ListLevels(self, request: pb.ListLevelsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListLevelsResponse:
        limit = page_size(request.page_size, default=MAX_LEVELS)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else 0
        if not isinstance(after, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        defined, counts = await self.service.levels()
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
        return await self.service.change_member_level(request, caller, member_id, reason)

    async def SetLevelFrozen(self, request: pb.SetLevelFrozenRequest,
                             context: grpc.aio.ServicerContext) -> pb.SetLevelFrozenResponse:
        caller = caller_of(context)
        require_admin(caller, "freezing a member's level")
        return await self.service.set_frozen(request, caller, parse_int_id(request.member_id, "member_id"))

    async def ListLevelChanges(self, request: pb.ListLevelChangesRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListLevelChangesResponse:
        limit = page_size(request.page_size)
        kind = known_enum(pb.LevelChangeKind, request.kind, "kind")
        if not 0 <= request.to_level <= MAX_LEVELS:
            raise InvalidArgument("must be 0..10", field="to_level")
        start, end = time_range(request.from_time, request.to_time, request.HasField("from_time"),
                                request.HasField("to_time"))
        before = before_id(request.page_token)
        f = ChangeFilter(member_id=optional_id(request.member_id, "member_id"), start=start, end=end, kind=kind,
                         to_level=request.to_level)
        page = await self.service.changes(caller_of(context), f, limit, before)
        return pb.ListLevelChangesResponse(changes=[change_to_proto(c) for c in page.items],
                                           next_page_token=page.next_token(lambda c: {"before": c.id}))

    async def ExportLevelChanges(self, request: pb.ExportLevelChangesRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ExportLevelChangesResponse:
        caller = caller_of(context)
        require_super_admin(caller, "downloading level changes")
        if request.max_rows < 0:
            raise InvalidArgument("must not be negative", field="max_rows")
        cap = min(request.max_rows or self.export_max_rows, self.export_max_rows)
        start, end = time_range(request.from_time, request.to_time, request.HasField("from_time"),
                                request.HasField("to_time"))
        f = ChangeFilter(member_id=optional_id(request.member_id, "member_id"), start=start, end=end)
        rows, zones = await self.service.changes_for_export(caller, f, cap)
        data = csv_download(
            ["变更编号", "会员编号", "原等级", "新等级", "变更类型", "原因", "操作人", "变更时间"],
            [(c.id, c.customer_id, c.from_level, c.to_level, KIND_TEXT.get(c.kind, ""), c.reason, c.operator_id,
              local_time(c.created_at, zones.get(c.customer_id))) for c in rows[:cap]])
        return pb.ExportLevelChangesResponse(csv=data, row_count=min(len(rows), cap), truncated=len(rows) > cap)

    async def RunLevelExpiry(self, request: pb.RunLevelExpiryRequest,
                             context: grpc.aio.ServicerContext) -> pb.RunLevelExpiryResponse:
        require_super_admin(caller_of(context), "running level expiry")
        as_of = aware(request.as_of_time.ToDatetime()) if request.HasField("as_of_time") else self.clock()
        return await self.service.run_expiry(request, as_of)
