"""AlertService's domain operations: rules, alerts, the whitelist and digests, each in its own transaction (a
mutation through ``@idempotent("RpcName")``, a read through ``db.read()``).

The servicer has parsed and checked the request first; the queries are the repositories'. Checks that need
the row (whose mall a rule or an alert is in) happen here, inside the transaction that read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.convert import alert_to_proto, entry_to_proto, rule_to_proto
from services.alert.customer_client import CustomerClient
from services.alert.models import Alert, AlertOrder, AlertRule, Digest, IdempotencyRecord, MallView, WhitelistEntry
from services.alert.repository import (
    AlertQuery,
    AlertRepository,
    DigestRepository,
    MallRepository,
    MemberRepository,
    RuleRepository,
    WhitelistRepository,
    bump_mall,
    close_open_alerts,
)
from services.alert.rules import MAX_RULES_PER_MALL, require_enabled_condition
from services.alert.scope import require_mall
from services.common.auth import Caller
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.idempotency import IdempotencyMixin, idempotent
from services.common.pagination import Page, keyset_page

EXPORT_LIMIT = 200_000

AlertRow = tuple[Alert, bool, bool]
"""An alert with its member's store-member and disabled flags."""


@dataclass(frozen=True)
class AlertDetail:
    """One alert, every alert of its member in its mall, and the orders behind each of them."""

    alert: AlertRow
    member_alerts: Sequence[AlertRow]
    orders: dict[int, list[AlertOrder]]


async def _live_mall(session: AsyncSession, mall_id: str) -> MallView:
    mall = await MallRepository(session).get(mall_id)
    if mall is None or mall.deleted or not mall.name:
        raise NotFound(f"mall {mall_id} is not known to the alert service", field="mall_id")
    return mall


async def _rule(rules: RuleRepository, rule_id: int, caller: Caller, what: str) -> AlertRule:
    rule = await rules.get(rule_id)
    if rule is None or rule.deleted_at is not None:
        raise NotFound(f"alert rule {rule_id} does not exist", field="rule_id")
    require_mall(caller, rule.mall_id, what)
    return rule


async def _check_scope_stores(rules: RuleRepository, mall_id: str, kind: int, values: list[str], field: str) -> None:
    """An explicit store list names known stores of the rule's mall only."""
    if kind != pb.STORE_SCOPE_KIND_STORES:
        return
    found = await rules.store_malls(values)
    for i, store_id in enumerate(values):
        if store_id not in found:
            raise InvalidArgument(f"unknown store {store_id}", field=f"{field}.values[{i}]")
        if found[store_id] != mall_id:
            raise InvalidArgument(f"store {store_id} belongs to another mall", field=f"{field}.values[{i}]")


class AlertService:
    idempotency: type[IdempotencyMixin] = IdempotencyRecord

    def __init__(self, db: Database, customers: CustomerClient, on_rule_change: Callable[[], None],
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.customers = customers
        self.on_rule_change = on_rule_change  # wakes the re-evaluator once a rule change has committed
        self.clock = clock

    # ----- rules

    async def create_rule(self, request: pb.CreateAlertRuleRequest, caller: Caller, mall_id: str,
                          values: dict[str, object]) -> pb.CreateAlertRuleResponse:
        """A new rule in ``mall_id`` from checked column ``values`` (``RuleInput``)."""
        response = await self._create_rule(request, caller, mall_id, values)
        self.on_rule_change()
        return response

    @idempotent("CreateAlertRule")
    async def _create_rule(self, session: AsyncSession, request: pb.CreateAlertRuleRequest, caller: Caller,
                           mall_id: str, values: dict[str, object]) -> pb.CreateAlertRuleResponse:
        rules = RuleRepository(session)
        await _live_mall(session, mall_id)
        await _check_scope_stores(rules, mall_id, cast(int, values["scope_kind"]),
                                  cast(list[str], values["scope_values"]), "scope")
        await bump_mall(session, mall_id)  # also serialises creations in the mall (row lock on PostgreSQL)
        if await rules.live_count(mall_id) >= MAX_RULES_PER_MALL:
            raise FailedPrecondition(f"a mall has at most {MAX_RULES_PER_MALL} alert rules", field="mall_id")
        now = self.clock()
        rule = await rules.add(AlertRule(
            mall_id=mall_id, creator_id=caller.staff_id, created_at=now, editor_id=caller.staff_id, updated_at=now,
            version=1, eval_state=pb.EVALUATION_STATE_PENDING, eval_version=1, eval_total=0, eval_done=0,
            eval_raised=0, eval_cursor="", **values))
        return pb.CreateAlertRuleResponse(rule=rule_to_proto(rule))

    async def rule(self, caller: Caller, rule_id: int) -> AlertRule:
        async with self.db.read() as session:
            return await _rule(RuleRepository(session), rule_id, caller, "reading an alert rule")

    async def update_rule(self, request: pb.UpdateAlertRuleRequest, caller: Caller, rule_id: int,
                          values: dict[str, object]) -> pb.UpdateAlertRuleResponse:
        """Sets the checked column ``values`` the update mask named; a change past the name re-evaluates."""
        response = await self._update_rule(request, caller, rule_id, values)
        self.on_rule_change()
        return response

    @idempotent("UpdateAlertRule")
    async def _update_rule(self, session: AsyncSession, request: pb.UpdateAlertRuleRequest, caller: Caller,
                           rule_id: int, values: dict[str, object]) -> pb.UpdateAlertRuleResponse:
        rules = RuleRepository(session)
        rule = await _rule(rules, rule_id, caller, "editing an alert rule")
        if "scope_kind" in values:
            await _check_scope_stores(rules, rule.mall_id, cast(int, values["scope_kind"]),
                                      cast(list[str], values["scope_values"]), "rule.scope")
        changed = {k for k, v in values.items() if getattr(rule, k) != v}
        for key in changed:
            setattr(rule, key, values[key])
        require_enabled_condition(rule, "rule.")
        if changed:
            rule.editor_id, rule.updated_at = caller.staff_id, self.clock()
            if changed - {"name"}:
                rule.version += 1
                rule.eval_state = pb.EVALUATION_STATE_PENDING
            await bump_mall(session, rule.mall_id)
            await session.flush()
        return pb.UpdateAlertRuleResponse(rule=rule_to_proto(rule))

    @idempotent("DeleteAlertRule")
    async def delete_rule(self, session: AsyncSession, request: pb.DeleteAlertRuleRequest, caller: Caller,
                          rule_id: int) -> pb.DeleteAlertRuleResponse:
        rule = await _rule(RuleRepository(session), rule_id, caller, "deleting an alert rule")
        rule.deleted_at = rule.updated_at = self.clock()
        rule.editor_id = caller.staff_id
        await bump_mall(session, rule.mall_id)
        return pb.DeleteAlertRuleResponse(rule=rule_to_proto(rule))

    async def rules(self, mall_id: str, limit: int, after: int) -> Page[AlertRule]:
        """A page of the mall's live rules, by id after ``after``."""
        async with self.db.read() as session:
            repo = RuleRepository(session)
            return await keyset_page(lambda n: repo.page(mall_id, n, after), limit)

    # ----- alerts

    async def alerts(self, query: AlertQuery, limit: int, before: int | None) -> Page[AlertRow]:
        """A page of the alerts ``query`` selects, newest first, before alert id ``before``."""
        async with self.db.read() as session:
            repo = AlertRepository(session)
            return await keyset_page(lambda n: repo.page(query, n, before), limit)

    async def alert(self, caller: Caller, alert_id: int) -> AlertDetail:
        async with self.db.read() as session:
            repo = AlertRepository(session)
            row = await repo.get(alert_id)
            if row is None:
                raise NotFound(f"alert {alert_id} does not exist", field="alert_id")
            require_mall(caller, row[0].mall_id, "reading an alert")
            siblings = await repo.of_member(row[0].mall_id, row[0].member_id)
            orders = await repo.orders([a.id for a, _, _ in siblings])
        return AlertDetail(row, siblings, orders)

    async def export(self, query: AlertQuery) -> tuple[list[AlertRow], dict[str, str]]:
        """Every alert ``query`` selects (at most ``EXPORT_LIMIT``), newest first, and each mall's time zone."""
        async with self.db.read() as session:
            zones = await MallRepository(session).zones()
            repo = AlertRepository(session)
            page = await keyset_page(lambda n: repo.page(query, n, None), EXPORT_LIMIT)
        if page.more:
            raise FailedPrecondition(f"more than {EXPORT_LIMIT} alerts: narrow the filter", field="filter")
        return page.items, zones

    async def disable_member(self, request: pb.DisableAlertMemberRequest, caller: Caller,
                             alert_id: int) -> pb.DisableAlertMemberResponse:
        """Disables the alert's member in the customer service, then records it here: the member's open alerts
        close as MEMBER_DISABLED, this one whatever its state."""
        async with self.db.read() as session:
            alert = await AlertRepository(session).alert(alert_id)
            if alert is None:
                raise NotFound(f"alert {alert_id} does not exist", field="alert_id")
            require_mall(caller, alert.mall_id, "disabling a member")
            member_id = alert.member_id
        # Idempotent on the customer side by request_id; then recorded here (idempotent by request_id too).
        await self.customers.disable_member(member_id, f"alert-disable:{request.request_id}", caller)
        return await self._record_disabled(request, alert_id, member_id)

    @idempotent("DisableAlertMember")
    async def _record_disabled(self, session: AsyncSession, request: pb.DisableAlertMemberRequest, alert_id: int,
                               member_id: str) -> pb.DisableAlertMemberResponse:
        await MemberRepository(session).mark_disabled(member_id)
        await close_open_alerts(session, member_id, pb.ALERT_STATE_MEMBER_DISABLED)
        await session.flush()
        repo = AlertRepository(session)
        target = await repo.alert(alert_id)
        assert target is not None
        target.state = pb.ALERT_STATE_MEMBER_DISABLED
        await session.flush()
        row = await repo.get(alert_id)
        assert row is not None
        return pb.DisableAlertMemberResponse(alert=alert_to_proto(*row))

    # ----- digests

    async def digests(self, mall_id: str, limit: int, before: str | None) -> Page[Digest]:
        """A page of the mall's digests, newest local date first, before local date ``before``."""
        async with self.db.read() as session:
            repo = DigestRepository(session)
            return await keyset_page(lambda n: repo.page(mall_id, n, before), limit)

    # ----- whitelist

    @idempotent("AddWhitelistEntry")
    async def add_entry(self, session: AsyncSession, request: pb.AddWhitelistEntryRequest, caller: Caller,
                        member_id: str, reason: str) -> pb.AddWhitelistEntryResponse:
        """Whitelists the member and closes their open alerts as WHITELISTED."""
        repo = WhitelistRepository(session)
        if await repo.get(member_id) is not None:
            raise AlreadyExists(f"member {member_id} is already whitelisted", field="member_id")
        entry = await repo.add(WhitelistEntry(member_id=member_id, reason=reason, operator_id=caller.staff_id,
                                              created_at=self.clock()))
        closed = await close_open_alerts(session, member_id, pb.ALERT_STATE_WHITELISTED)
        return pb.AddWhitelistEntryResponse(entry=entry_to_proto(entry), alerts_closed=closed)

    @idempotent("RemoveWhitelistEntry")
    async def remove_entry(self, session: AsyncSession, request: pb.RemoveWhitelistEntryRequest,
                           member_id: str) -> pb.RemoveWhitelistEntryResponse:
        repo = WhitelistRepository(session)
        entry = await repo.get(member_id)
        if entry is None:
            raise NotFound(f"member {member_id} is not whitelisted", field="member_id")
        response = pb.RemoveWhitelistEntryResponse(entry=entry_to_proto(entry))
        await repo.remove(member_id)
        return response

    async def entries(self, limit: int, after: tuple[datetime, str] | None) -> Page[WhitelistEntry]:
        """A page of the whitelist, newest first, after (created_at, member_id) ``after``."""
        async with self.db.read() as session:
            repo = WhitelistRepository(session)
            return await keyset_page(lambda n: repo.page(n, after), limit)
