"""Points rules: how many points an order earns, and after how many days points expire.

A mall may have a rule of its own; ``mall_id`` "" holds the default for the others; with
neither, the built-in rule applies (1 point per yuan paid, no multipliers, no exclusions, no
expiry). Points = paid fen × points_per_yuan × level multiplier (per mille) ÷ 100,000, rounded
down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import InvalidArgument
from services.common.validation import MAX_MONEY, parse_int_id, to_timestamp
from services.ledger.models import PointsRule
from services.ledger.places import Places

DEFAULT_MALL = ""
MAX_POINTS_PER_YUAN = 10_000
MAX_PERMILLE = 100_000
MAX_LEVEL = 10
MAX_EXPIRY_DAYS = 36_500
MAX_EXCLUDED_STORES = 10_000


@dataclass(frozen=True)
class Rule:
    mall_id: str = DEFAULT_MALL
    points_per_yuan: int = 1
    level_multipliers: dict[int, int] = field(default_factory=dict)
    excluded_store_ids: frozenset[str] = frozenset()
    expiry_days: int = 0
    operator_id: str = ""
    updated_at: datetime | None = None
    built_in: bool = False

    def points_for(self, paid_fen: int, level: int, store_id: str) -> int:
        if store_id and store_id in self.excluded_store_ids:
            return 0
        permille = self.level_multipliers.get(level, 1000)
        return min(paid_fen * self.points_per_yuan * permille // 100_000, MAX_MONEY)


BUILT_IN = Rule(built_in=True)


# The rules of some malls, read as table rows (no ORM objects: the journal reads them for every batch).
RULES_OF = select(*PointsRule.__table__.c).where(
    PointsRule.__table__.c.mall_id.in_(bindparam("malls", expanding=True)))


def rule_from_row(row: PointsRule | Row) -> Rule:
    return Rule(mall_id=row.mall_id, points_per_yuan=row.points_per_yuan,
                level_multipliers={int(k): int(v) for k, v in row.level_multipliers.items()},
                excluded_store_ids=frozenset(row.excluded_store_ids), expiry_days=row.expiry_days,
                operator_id=row.operator_id, updated_at=row.updated_at)


def rule_to_proto(rule: Rule) -> pb.PointsRule:
    return pb.PointsRule(
        mall_id=rule.mall_id, points_per_yuan=rule.points_per_yuan,
        level_multiplier_permille=rule.level_multipliers, excluded_store_ids=sorted(rule.excluded_store_ids),
        expiry_days=rule.expiry_days, update_time=to_timestamp(rule.updated_at), operator_id=rule.operator_id)


def parse_rule(message: pb.PointsRule, field_name: str = "rule") -> Rule:
    """A rule from the wire, every value checked; errors name the field."""
    mall_id = message.mall_id
    if mall_id:
        parse_int_id(mall_id, f"{field_name}.mall_id")
    if not 0 <= message.points_per_yuan <= MAX_POINTS_PER_YUAN:
        raise InvalidArgument(f"must be 0 to {MAX_POINTS_PER_YUAN}", field=f"{field_name}.points_per_yuan")
    multipliers: dict[int, int] = {}
    for level, permille in message.level_multiplier_permille.items():
        where = f"{field_name}.level_multiplier_permille[{level}]"
        if not 0 <= level <= MAX_LEVEL:
            raise InvalidArgument(f"level must be 0 to {MAX_LEVEL}", field=where)
        if not 0 <= permille <= MAX_PERMILLE:
            raise InvalidArgument(f"must be 0 to {MAX_PERMILLE} per mille", field=where)
        multipliers[level] = permille
    if len(message.excluded_store_ids) > MAX_EXCLUDED_STORES:
        raise InvalidArgument(f"at most {MAX_EXCLUDED_STORES} stores", field=f"{field_name}.excluded_store_ids")
    for i, store_id in enumerate(message.excluded_store_ids):
        parse_int_id(store_id, f"{field_name}.excluded_store_ids[{i}]")
    if not 0 <= message.expiry_days <= MAX_EXPIRY_DAYS:
        raise InvalidArgument(f"must be 0 (never) to {MAX_EXPIRY_DAYS}", field=f"{field_name}.expiry_days")
    return Rule(mall_id=mall_id, points_per_yuan=message.points_per_yuan, level_multipliers=multipliers,
                excluded_store_ids=frozenset(message.excluded_store_ids), expiry_days=message.expiry_days)


def effective_rules(session: Session, mall_ids: Iterable[str]) -> dict[str, Rule]:
    """The rule that applies to each mall: its own, else the default, else the built-in one."""
    wanted = set(mall_ids)
    rows = session.execute(RULES_OF, {"malls": sorted(wanted | {DEFAULT_MALL})})
    found = {row.mall_id: rule_from_row(row) for row in rows}
    fallback = found.get(DEFAULT_MALL, BUILT_IN)
    return {mall_id: found.get(mall_id, fallback) for mall_id in wanted}


async def check_rule_places(session: AsyncSession, rule: Rule, excluded_store_ids: Sequence[str],
                            field_name: str = "rule") -> None:
    """A mall's rule names a mall the ledger knows, and excludes only stores of that mall (the default rule:
    any known store)."""
    places = Places()
    await session.run_sync(lambda s: places.load(s, [(rule.mall_id, store) for store in excluded_store_ids]
                                                 or [(rule.mall_id, "")]))
    places.check(rule.mall_id, "", mall_field=f"{field_name}.mall_id")
    places.check_stores(excluded_store_ids, rule.mall_id, f"{field_name}.excluded_store_ids")


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def effective(self, mall_ids: Iterable[str]) -> dict[str, Rule]:
        """The rule that applies to each mall: its own, else the default, else the built-in one."""
        wanted = set(mall_ids)
        return await self.session.run_sync(lambda session: effective_rules(session, wanted))

    async def put(self, rule: Rule, *, operator_id: str, now: datetime) -> Rule:
        row = await self.session.get(PointsRule, rule.mall_id)
        if row is None:
            row = PointsRule(mall_id=rule.mall_id)
            self.session.add(row)
        row.points_per_yuan = rule.points_per_yuan
        row.level_multipliers = {str(k): v for k, v in sorted(rule.level_multipliers.items())}
        row.excluded_store_ids = sorted(rule.excluded_store_ids)
        row.expiry_days = rule.expiry_days
        row.operator_id = operator_id
        row.updated_at = now
        await self.session.flush()
        return rule_from_row(row)
