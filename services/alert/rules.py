"""Alert rules: checking what a request asks for, and the rules of a mall as the evaluators use them (cached
per mall revision). Rows become messages in ``convert.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.evaluation import HORIZON_DAYS, Reach, RuleSpec, Window, lowest
from services.alert.models import AlertRule, MallView, StoreView
from services.common.chunks import IN_LIST, chunks
from services.common.errors import InvalidArgument
from services.common.validation import known_enum

MAX_RULES_PER_MALL = 20
MAX_NAME = 50
MAX_SCOPE_VALUES = 500
DEFAULT_TIMEZONE = "Asia/Shanghai"
ATTRIBUTE_SCOPES: dict[int, str] = {
    pb.STORE_SCOPE_KIND_CATEGORY: "category", pb.STORE_SCOPE_KIND_BUSINESS_FORMAT: "business_format",
    pb.STORE_SCOPE_KIND_FLOOR: "floor"}
CONDITION_FIELDS = ("single_order", "any_store", "scope_total")


def check_name(name: str, field: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("is required", field=field)
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"must be at most {MAX_NAME} characters", field=field)
    return name


def check_scope(scope: pb.StoreScope, field: str) -> tuple[int, list[str]]:
    """The scope's kind and values (trimmed, duplicates dropped); stores are checked against the mall later."""
    kind = known_enum(pb.StoreScopeKind, scope.kind, f"{field}.kind", allow_unspecified=False)
    values = list(dict.fromkeys(v.strip() for v in scope.values))
    if kind == pb.STORE_SCOPE_KIND_ALL:
        if values:
            raise InvalidArgument("must be empty for STORE_SCOPE_KIND_ALL", field=f"{field}.values")
        return kind, []
    if not values:
        raise InvalidArgument("name at least one store" if kind == pb.STORE_SCOPE_KIND_STORES
                              else "name at least one value", field=f"{field}.values")
    if len(values) > MAX_SCOPE_VALUES:
        raise InvalidArgument(f"at most {MAX_SCOPE_VALUES} values", field=f"{field}.values")
    for i, value in enumerate(values):
        if not value:
            raise InvalidArgument("must not be empty", field=f"{field}.values[{i}]")
        if kind == pb.STORE_SCOPE_KIND_STORES and (not value.isdigit() or len(value) > 18):
            raise InvalidArgument("must be a numeric store id", field=f"{field}.values[{i}]")
    return kind, values


def check_single(c: pb.SingleOrderCondition, field: str) -> tuple[bool, int | None]:
    if not c.enabled:
        return False, None
    if c.min_paid_amount <= 0:
        raise InvalidArgument("must be a positive amount in fen", field=f"{field}.min_paid_amount")
    return True, c.min_paid_amount


def check_window(c: pb.WindowCondition, field: str) -> tuple[bool, int | None, int | None, int | None]:
    if not c.enabled:
        return False, None, None, None
    if not 1 <= c.days <= HORIZON_DAYS:
        raise InvalidArgument(f"must be 1 to {HORIZON_DAYS}", field=f"{field}.days")
    count = c.min_order_count if c.HasField("min_order_count") else None
    paid = c.min_paid_amount if c.HasField("min_paid_amount") else None
    if count is None and paid is None:
        raise InvalidArgument("set min_order_count or min_paid_amount (or both)", field=f"{field}.min_order_count")
    if count is not None and count <= 0:
        raise InvalidArgument("must be a positive count", field=f"{field}.min_order_count")
    if paid is not None and paid <= 0:
        raise InvalidArgument("must be a positive amount in fen", field=f"{field}.min_paid_amount")
    return True, c.days, count, paid


@dataclass
class RuleInput:
    """A rule's checked definition, as column values."""

    values: dict[str, object]

    @classmethod
    def parse(cls, name: str, scope: pb.StoreScope, single: pb.SingleOrderCondition, any_store: pb.WindowCondition,
              total: pb.WindowCondition, prefix: str = "", parts: Sequence[str] | None = None) -> RuleInput:
        """Checks the parts named (every part when None); ``prefix`` names the fields (``rule.``)."""
        parts = parts if parts is not None else ("name", "scope", *CONDITION_FIELDS)
        values: dict[str, object] = {}
        if "name" in parts:
            values["name"] = check_name(name, f"{prefix}name")
        if "scope" in parts:
            values["scope_kind"], values["scope_values"] = check_scope(scope, f"{prefix}scope")
        if "single_order" in parts:
            values["single_enabled"], values["single_min_paid"] = check_single(single, f"{prefix}single_order")
        if "any_store" in parts:
            (values["any_enabled"], values["any_days"], values["any_min_count"],
             values["any_min_paid"]) = check_window(any_store, f"{prefix}any_store")
        if "scope_total" in parts:
            (values["total_enabled"], values["total_days"], values["total_min_count"],
             values["total_min_paid"]) = check_window(total, f"{prefix}scope_total")
        return cls(values)

    def require_enabled_condition(self) -> None:
        """For a new rule, which gives every part."""
        _require_enabled(any(self.values[f] for f in ("single_enabled", "any_enabled", "total_enabled")), "")


def require_enabled_condition(rule: AlertRule, prefix: str = "") -> None:
    """For an edited rule, whose parts not in the mask keep their stored values."""
    _require_enabled(rule.single_enabled or rule.any_enabled or rule.total_enabled, prefix)


def _require_enabled(enabled: bool, prefix: str) -> None:
    if not enabled:
        raise InvalidArgument("enable at least one of single_order, any_store, scope_total",
                              field=f"{prefix}single_order.enabled")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def scope_stores(rule: AlertRule, stores: Sequence[StoreView]) -> frozenset[str] | None:
    """The store ids a rule's scope covers now (None: every store of the mall)."""
    kind, values = rule.scope_kind, set(rule.scope_values)
    if kind == pb.STORE_SCOPE_KIND_ALL:
        return None
    if kind == pb.STORE_SCOPE_KIND_STORES:
        return frozenset(values)
    if kind == pb.STORE_SCOPE_KIND_TAG:
        return frozenset(s.store_id for s in stores if values.intersection(s.tags or ()))
    attribute = ATTRIBUTE_SCOPES[kind]
    return frozenset(s.store_id for s in stores if getattr(s, attribute) in values)


def spec_of(rule: AlertRule, stores: Sequence[StoreView]) -> RuleSpec:
    return RuleSpec(
        rule_id=rule.id, name=rule.name, stores=scope_stores(rule, stores),
        single_min_paid=rule.single_min_paid if rule.single_enabled else None,
        any_store=Window(rule.any_days or 1, rule.any_min_count, rule.any_min_paid) if rule.any_enabled else None,
        scope_total=(Window(rule.total_days or 1, rule.total_min_count, rule.total_min_paid)
                     if rule.total_enabled else None))


@dataclass(frozen=True)
class MallRules:
    revision: int
    tz: ZoneInfo
    rules: tuple[RuleSpec, ...]
    # The lowest threshold of each kind among the rules (evaluation.lowest).
    floor: Reach


class RuleCache:
    """The live rules of each mall with their store scopes resolved, reloaded when the mall's revision moves.

    Every change of a mall's rules or stores bumps ``mall_view.revision`` in its own transaction, so one
    primary-key read tells whether the cached rules are current (in every replica).
    """

    def __init__(self) -> None:
        self._malls: dict[str, MallRules] = {}

    def get(self, session: Session, mall_id: str) -> MallRules | None:
        return self.get_many(session, [mall_id]).get(mall_id)

    def get_many(self, session: Session, mall_ids: Sequence[str]) -> dict[str, MallRules]:
        """The rules of those of these malls that are known and not deleted: their revisions in one read."""
        found: dict[str, MallRules] = {}
        for part in chunks(mall_ids, IN_LIST):
            for mall_id, revision, timezone, deleted in session.execute(_REVISIONS, {"malls": list(part)}):
                if deleted:
                    continue
                cached = self._malls.get(mall_id)
                found[mall_id] = (cached if cached is not None and cached.revision == revision
                                  else self._load(session, mall_id, revision, timezone))
        return found

    def _load(self, session: Session, mall_id: str, revision: int, timezone: str) -> MallRules:
        rules = session.scalars(select(AlertRule).where(
            AlertRule.mall_id == mall_id, AlertRule.deleted_at.is_(None)).order_by(AlertRule.id)).all()
        stores = session.scalars(select(StoreView).where(
            StoreView.mall_id == mall_id, StoreView.deleted.is_(False))).all()
        specs = tuple(spec_of(r, stores) for r in rules)
        loaded = MallRules(revision, zone(timezone), specs, lowest(specs))
        self._malls[mall_id] = loaded
        return loaded


# Built once, the malls bound at each call.
_REVISIONS = select(MallView.mall_id, MallView.revision, MallView.timezone, MallView.deleted).where(
    MallView.mall_id.in_(bindparam("malls", expanding=True)))
