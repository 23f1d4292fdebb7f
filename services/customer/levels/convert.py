"""Level rows to their messages."""

from __future__ import annotations

from crowdpack.customer.v1 import level_service_pb2 as pb
from services.common.validation import enum_of, to_timestamp
from services.customer.levels.models import Level, LevelChange


def level_to_proto(level: Level, members: int = 0) -> pb.Level:
    return pb.Level(number=level.number, name=level.name, discount_permille=level.discount_permille,
                    upgrade_mode=enum_of(pb.UpgradeMode, level.upgrade_mode), upgrade_spend_fen=level.upgrade_spend_fen,
                    validity_months=level.validity_months, retain_spend_fen=level.retain_spend_fen,
                    member_count=members)


def change_to_proto(change: LevelChange) -> pb.LevelChange:
    return pb.LevelChange(change_id=str(change.id), member_id=str(change.customer_id), from_level=change.from_level,
                          to_level=change.to_level, kind=enum_of(pb.LevelChangeKind, change.kind), reason=change.reason,
                          operator_id=change.operator_id, create_time=to_timestamp(change.created_at))
