"""crowdpack.alert.v1.AlertService over gRPC: parse and check, run the work in one transaction, convert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import grpc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from services.alert.consumers import bump_mall, close_open_alerts
from services.alert.customer_client import CustomerClient
from services.alert.evaluation import conditions_of
from services.alert.export import alerts_csv
from services.alert.models import (
    Alert,
    AlertOrder,
    AlertRule,
    Digest,
    IdempotencyRecord,
    MallView,
    MemberView,
    WhitelistEntry,
)
from services.alert.repository import AlertQuery, AlertRepository, WhitelistRepository
from services.alert.rules import (
    CONDITION_FIELDS,
    MAX_RULES_PER_MALL,
    RuleInput,
    check_scope_stores,
    require_enabled_condition,
    to_proto,
)
from services.common.auth import Caller, Role, caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import run_idempotent
from services.common.pagination import after_id, after_token, decode_token, encode_token, page_size
from services.common.validation import aware, enum_of, known_enum, mask_paths, parse_int_id, to_timestamp

UPDATABLE = {"name", "scope", *CONDITION_FIELDS}
EXPORT_LIMIT = 200_000


def entry_to_proto(entry: WhitelistEntry) -> pb.WhitelistEntry:
    return pb.WhitelistEntry(member_id=entry.member_id, reason=entry.reason, operator_id=entry.operator_id,
                             create_time=to_timestamp(entry.created_at))


def alert_to_proto(alert: Alert, store_member: bool, disabled: bool,
                   orders: list[AlertOrder] | None = None) -> pb.Alert:
    return pb.Alert(
        alert_id=str(alert.id), mall_id=alert.mall_id, member_id=alert.member_id, rule_id=str(alert.rule_id),
        rule_name=alert.rule_name, conditions=[enum_of(pb.ConditionKind, c) for c in conditions_of(alert.conditions)],
        state=enum_of(pb.AlertState, alert.state),
        store_member=bool(store_member), member_disabled=bool(disabled),
        first_trigger_time=to_timestamp(alert.first_triggered_at),
        last_trigger_time=to_timestamp(alert.last_triggered_at), order_count=alert.order_count,
        orders=[pb.AlertOrder(order_id=o.order_id, store_id=o.store_id, paid_amount=o.paid_amount,
                              occur_time=to_timestamp(o.occur_time), condition=enum_of(pb.ConditionKind, o.condition))
                for o in orders or ()])


def digest_to_proto(d: Digest) -> pb.Digest:
    return pb.Digest(digest_id=d.id, mall_id=d.mall_id, local_date=d.local_date, alert_count=d.alert_count,
                     delivery_state=enum_of(pb.DeliveryState, d.delivery_state), attempts=d.attempts,
                     create_time=to_timestamp(d.created_at),
                     deliver_time=to_timestamp(d.delivered_at))


def require_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN):
        raise PermissionDenied(f"{what} needs an administrator")


def require_mall(caller: Caller, mall_id: str, what: str) -> None:
    """Administrators only; a mall admin only in their own malls."""
    require_admin(caller, what)
    if caller.role == Role.MALL_ADMIN and mall_id not in caller.mall_ids:
        raise PermissionDenied(f"{what}: mall {mall_id} is not one of yours")


def visible_malls(caller: Caller, mall_id: str) -> frozenset[str] | None:
    """The malls a list may show the caller (None: every mall)."""
    require_admin(caller, "listing alerts")
    if mall_id:
        parse_int_id(mall_id, "filter.mall_id")
        require_mall(caller, mall_id, "listing alerts")
        return frozenset([mall_id])
    return caller.mall_ids if caller.role == Role.MALL_ADMIN else None


def alert_query(f: pb.AlertFilter, caller: Caller) -> AlertQuery:
    start = aware(f.start_time.ToDatetime()) if f.HasField("start_time") else None
    end = aware(f.end_time.ToDatetime()) if f.HasField("end_time") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("must be after filter.start_time", field="filter.end_time")
    return AlertQuery(
        malls=visible_malls(caller, f.mall_id),
        store_member=f.store_member if f.HasField("store_member") else None,
        member_disabled=f.member_disabled if f.HasField("member_disabled") else None,
        rule_id=parse_int_id(f.rule_id, "filter.rule_id") if f.rule_id else None, start=start, end=end,
        state=known_enum(pb.AlertState, f.state, "filter.state"))


class AlertServicer(pb_grpc.AlertServiceServicer):
    def __init__(self, db: Database, customers: CustomerClient, on_rule_change: Callable[[], None]) -> None:
        self.db = db
        self.customers = customers
        self.on_rule_change = on_rule_change

    # ----- rules

    async def CreateAlertRule(self, request: pb.CreateAlertRuleRequest,
                              context: grpc.aio.ServicerContext) -> pb.CreateAlertRuleResponse:
        caller = caller_of(context)
        mall_id = str(parse_int_id(request.mall_id, "mall_id"))
        require_mall(caller, mall_id, "creating an alert rule")
        values = RuleInput.parse(request.name, request.scope, request.single_order, request.any_store,
                                 request.scope_total).values
        probe = AlertRule(**values)
        require_enabled_condition(probe)

        async def create(session: AsyncSession) -> pb.CreateAlertRuleResponse:
            await self._live_mall(session, mall_id)
            await check_scope_stores(session, mall_id, probe.scope_kind, probe.scope_values, "scope")
            await bump_mall(session, mall_id)  # also serialises creations in the mall (row lock on PostgreSQL)
            count = await session.scalar(select(func.count()).select_from(AlertRule).where(
                AlertRule.mall_id == mall_id, AlertRule.deleted_at.is_(None)))
            if (count or 0) >= MAX_RULES_PER_MALL:
                raise FailedPrecondition(f"a mall has at most {MAX_RULES_PER_MALL} alert rules", field="mall_id")
            now = utcnow()
            rule = AlertRule(mall_id=mall_id, creator_id=caller.staff_id, created_at=now, editor_id=caller.staff_id,
                             updated_at=now, version=1, eval_state=pb.EVALUATION_STATE_PENDING, eval_version=1,
                             eval_total=0, eval_done=0, eval_raised=0, eval_cursor="", **values)
            session.add(rule)
            await session.flush()
            return pb.CreateAlertRuleResponse(rule=to_proto(rule))

        response = await run_idempotent(self.db, IdempotencyRecord, "CreateAlertRule", request,
                                        pb.CreateAlertRuleResponse, create)
        self.on_rule_change()
        return response

    async def GetAlertRule(self, request: pb.GetAlertRuleRequest,
                           context: grpc.aio.ServicerContext) -> pb.GetAlertRuleResponse:
        rule_id = parse_int_id(request.rule_id, "rule_id")
        async with self.db.read() as session:
            rule = await self._rule(session, rule_id, caller_of(context), "reading an alert rule")
            return pb.GetAlertRuleResponse(rule=to_proto(rule))

    async def UpdateAlertRule(self, request: pb.UpdateAlertRuleRequest,
                              context: grpc.aio.ServicerContext) -> pb.UpdateAlertRuleResponse:
        caller = caller_of(context)
        rule_id = parse_int_id(request.rule.rule_id, "rule.rule_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        r = request.rule
        values = RuleInput.parse(r.name, r.scope, r.single_order, r.any_store, r.scope_total, "rule.", paths).values

        async def update(session: AsyncSession) -> pb.UpdateAlertRuleResponse:
            rule = await self._rule(session, rule_id, caller, "editing an alert rule")
            if "scope_kind" in values:
                await check_scope_stores(session, rule.mall_id, values["scope_kind"], values["scope_values"],  # type: ignore[arg-type]  # parsed
                                         "rule.scope")
            changed = {k for k, v in values.items() if getattr(rule, k) != v}
            for key in changed:
                setattr(rule, key, values[key])
            require_enabled_condition(rule, "rule.")
            if changed:
                rule.editor_id, rule.updated_at = caller.staff_id, utcnow()
                if changed - {"name"}:
                    rule.version += 1
                    rule.eval_state = pb.EVALUATION_STATE_PENDING
                await bump_mall(session, rule.mall_id)
                await session.flush()
            return pb.UpdateAlertRuleResponse(rule=to_proto(rule))

        response = await run_idempotent(self.db, IdempotencyRecord, "UpdateAlertRule", request,
                                        pb.UpdateAlertRuleResponse, update)
        self.on_rule_change()
        return response

    async def DeleteAlertRule(self, request: pb.DeleteAlertRuleRequest,
                              context: grpc.aio.ServicerContext) -> pb.DeleteAlertRuleResponse:
        caller = caller_of(context)
        rule_id = parse_int_id(request.rule_id, "rule_id")

        async def delete(session: AsyncSession) -> pb.DeleteAlertRuleResponse:
            rule = await self._rule(session, rule_id, caller, "deleting an alert rule")
            rule.deleted_at = rule.updated_at = utcnow()
            rule.editor_id = caller.staff_id
            await bump_mall(session, rule.mall_id)
            return pb.DeleteAlertRuleResponse(rule=to_proto(rule))

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteAlertRule", request,
                                    pb.DeleteAlertRuleResponse, delete)

    async def ListAlertRules(self, request: pb.ListAlertRulesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListAlertRulesResponse:
        mall_id = str(parse_int_id(request.mall_id, "mall_id"))
        require_mall(caller_of(context), mall_id, "listing alert rules")
        limit = page_size(request.page_size)
        after = after_id(request.page_token)
        async with self.db.read() as session:
            rules = (await session.scalars(select(AlertRule).where(
                AlertRule.mall_id == mall_id, AlertRule.deleted_at.is_(None), AlertRule.id > after)
                .order_by(AlertRule.id).limit(limit + 1))).all()
        more = len(rules) > limit
        rules = rules[:limit]
        return pb.ListAlertRulesResponse(rules=[to_proto(r) for r in rules],
                                         next_page_token=after_token(rules[-1].id) if more else "")

    async def _live_mall(self, session: AsyncSession, mall_id: str) -> MallView:
        mall = await session.get(MallView, mall_id)
        if mall is None or mall.deleted or not mall.name:
            raise NotFound(f"mall {mall_id} is not known to the alert service", field="mall_id")
        return mall

    async def _rule(self, session: AsyncSession, rule_id: int, caller: Caller, what: str) -> AlertRule:
        rule = await session.get(AlertRule, rule_id)
        if rule is None or rule.deleted_at is not None:
            raise NotFound(f"alert rule {rule_id} does not exist", field="rule_id")
        require_mall(caller, rule.mall_id, what)
        return rule

    # ----- alerts

    async def ListAlerts(self, request: pb.ListAlertsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListAlertsResponse:
        query = alert_query(request.filter, caller_of(context))
        limit = page_size(request.page_size)
        before = after_id(request.page_token) or None
        async with self.db.read() as session:
            rows = await AlertRepository(session).page(query, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return pb.ListAlertsResponse(alerts=[alert_to_proto(*row) for row in rows],
                                     next_page_token=after_token(rows[-1][0].id) if more else "")

    async def GetAlert(self, request: pb.GetAlertRequest, context: grpc.aio.ServicerContext) -> pb.GetAlertResponse:
        alert_id = parse_int_id(request.alert_id, "alert_id")
        async with self.db.read() as session:
            repo = AlertRepository(session)
            row = await repo.get(alert_id)
            if row is None:
                raise NotFound(f"alert {alert_id} does not exist", field="alert_id")
            require_mall(caller_of(context), row[0].mall_id, "reading an alert")
            siblings = await repo.of_member(row[0].mall_id, row[0].member_id)
            orders = await repo.orders([a.id for a, _, _ in siblings])
        return pb.GetAlertResponse(alert=alert_to_proto(*row, orders.get(alert_id)),
                                   member_alerts=[alert_to_proto(*s, orders.get(s[0].id)) for s in siblings])

    async def ExportAlerts(self, request: pb.ExportAlertsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ExportAlertsResponse:
        caller = caller_of(context)
        if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN):
            raise PermissionDenied("exporting alerts is for super admins only")
        query = alert_query(request.filter, caller)
        encoding = known_enum(pb.ExportEncoding, request.encoding, "encoding")
        async with self.db.read() as session:
            zones = {mall_id: tz for mall_id, tz in await session.execute(select(MallView.mall_id, MallView.timezone))}
            rows = await AlertRepository(session).page(query, EXPORT_LIMIT + 1, None)
        if len(rows) > EXPORT_LIMIT:
            raise FailedPrecondition(f"more than {EXPORT_LIMIT} alerts: narrow the filter", field="filter")
        charset = "GB18030" if encoding == pb.EXPORT_ENCODING_GB18030 else "UTF-8"
        stamp = utcnow().strftime("%Y%m%d%H%M%S")
        return pb.ExportAlertsResponse(filename=f"异常会员预警_{stamp}.csv",
                                       content_type=f"text/csv; charset={charset}",
                                       content=alerts_csv(rows, encoding, zones), row_count=len(rows))

    async def DisableAlertMember(self, request: pb.DisableAlertMemberRequest,
                                 context: grpc.aio.ServicerContext) -> pb.DisableAlertMemberResponse:
        caller = caller_of(context)
        alert_id = parse_int_id(request.alert_id, "alert_id")
        if not request.request_id:
            raise InvalidArgument("is required", field="request_id")
        async with self.db.read() as session:
            alert = await session.get(Alert, alert_id)
            if alert is None:
                raise NotFound(f"alert {alert_id} does not exist", field="alert_id")
            require_mall(caller, alert.mall_id, "disabling a member")
            member_id = alert.member_id
        # Idempotent on the customer side by request_id; then recorded here (idempotent by request_id too).
        await self.customers.disable_member(member_id, f"alert-disable:{request.request_id}", caller)

        async def record(session: AsyncSession) -> pb.DisableAlertMemberResponse:
            member = await session.get(MemberView, member_id)
            if member is None:
                session.add(MemberView(member_id=member_id, virtual=False, disabled=True, store_member=False,
                                       deleted=False))
            else:
                member.disabled = True
            await close_open_alerts(session, member_id, pb.ALERT_STATE_MEMBER_DISABLED)
            await session.flush()
            target = await session.get(Alert, alert_id)
            assert target is not None
            target.state = pb.ALERT_STATE_MEMBER_DISABLED
            await session.flush()
            row = await AlertRepository(session).get(alert_id)
            assert row is not None
            return pb.DisableAlertMemberResponse(alert=alert_to_proto(*row))

        return await run_idempotent(self.db, IdempotencyRecord, "DisableAlertMember", request,
                                    pb.DisableAlertMemberResponse, record)

    # ----- digests

    async def ListDigests(self, request: pb.ListDigestsRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListDigestsResponse:
        mall_id = str(parse_int_id(request.mall_id, "mall_id"))
        require_mall(caller_of(context), mall_id, "listing digests")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        before = cursor.get("d") if cursor else None
        if cursor is not None and not isinstance(before, str):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        async with self.db.read() as session:
            query = select(Digest).where(Digest.mall_id == mall_id)
            if before is not None:
                query = query.where(Digest.local_date < before)
            rows = (await session.scalars(query.order_by(Digest.local_date.desc()).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return pb.ListDigestsResponse(digests=[digest_to_proto(d) for d in rows],
                                      next_page_token=encode_token({"d": rows[-1].local_date}) if more else "")

    # ----- whitelist

    async def AddWhitelistEntry(self, request: pb.AddWhitelistEntryRequest,
                                context: grpc.aio.ServicerContext) -> pb.AddWhitelistEntryResponse:
        caller = caller_of(context)
        require_admin(caller, "whitelisting a member")
        parse_int_id(request.member_id, "member_id")
        if len(request.reason) > 500:
            raise InvalidArgument("must be at most 500 characters", field="reason")

        async def add(session: AsyncSession) -> pb.AddWhitelistEntryResponse:
            repo = WhitelistRepository(session)
            if await repo.get(request.member_id) is not None:
                raise AlreadyExists(f"member {request.member_id} is already whitelisted", field="member_id")
            entry = await repo.add(WhitelistEntry(member_id=request.member_id, reason=request.reason.strip(),
                                                  operator_id=caller.staff_id, created_at=utcnow()))
            closed = await close_open_alerts(session, request.member_id, pb.ALERT_STATE_WHITELISTED)
            return pb.AddWhitelistEntryResponse(entry=entry_to_proto(entry), alerts_closed=closed)

        return await run_idempotent(self.db, IdempotencyRecord, "AddWhitelistEntry", request,
                                    pb.AddWhitelistEntryResponse, add)

    async def RemoveWhitelistEntry(self, request: pb.RemoveWhitelistEntryRequest,
                                   context: grpc.aio.ServicerContext) -> pb.RemoveWhitelistEntryResponse:
        require_admin(caller_of(context), "removing a whitelist entry")
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
        require_admin(caller_of(context), "listing the whitelist")
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
