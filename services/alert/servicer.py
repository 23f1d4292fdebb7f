"""crowdpack.alert.v1.AlertService over gRPC: parse the request and check the caller, call the service
(``service.py``, which owns the transactions), convert the answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import grpc

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from services.alert.convert import alert_to_proto, digest_to_proto, entry_to_proto, rule_to_proto
from services.alert.customer_client import CustomerClient
from services.alert.export import alerts_csv
from services.alert.repository import AlertQuery
from services.alert.rules import CONDITION_FIELDS, RuleInput
from services.alert.scope import require_admin, require_mall, require_super_admin, visible_malls
from services.alert.service import AlertService
from services.common.auth import Caller, caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.pagination import after_id, decode_token, page_size
from services.common.validation import aware, known_enum, mask_paths, parse_int_id

UPDATABLE = {"name", "scope", *CONDITION_FIELDS}
MAX_REASON = 500


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
    def __init__(self, db: Database, customers: CustomerClient, on_rule_change: Callable[[], None],
                 clock: Clock = utcnow) -> None:
        self.service = AlertService(db, customers, on_rule_change, clock)
        self.clock = clock

    # ----- rules

    async def CreateAlertRule(self, request: pb.CreateAlertRuleRequest,
                              context: grpc.aio.ServicerContext) -> pb.CreateAlertRuleResponse:
        caller = caller_of(context)
        mall_id = str(parse_int_id(request.mall_id, "mall_id"))
        require_mall(caller, mall_id, "creating an alert rule")
        rule = RuleInput.parse(request.name, request.scope, request.single_order, request.any_store,
                               request.scope_total)
        rule.require_enabled_condition()
        return await self.service.create_rule(request, caller, mall_id, rule.values)

    async def GetAlertRule(self, request: pb.GetAlertRuleRequest,
                           context: grpc.aio.ServicerContext) -> pb.GetAlertRuleResponse:
        rule_id = parse_int_id(request.rule_id, "rule_id")
        return pb.GetAlertRuleResponse(rule=rule_to_proto(await self.service.rule(caller_of(context), rule_id)))

    async def UpdateAlertRule(self, request: pb.UpdateAlertRuleRequest,
                              context: grpc.aio.ServicerContext) -> pb.UpdateAlertRuleResponse:
        caller = caller_of(context)
        rule_id = parse_int_id(request.rule.rule_id, "rule.rule_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        r = request.rule
        values = RuleInput.parse(r.name, r.scope, r.single_order, r.any_store, r.scope_total, "rule.", paths).values
        return await self.service.update_rule(request, caller, rule_id, values)

    async def DeleteAlertRule(self, request: pb.DeleteAlertRuleRequest,
                              context: grpc.aio.ServicerContext) -> pb.DeleteAlertRuleResponse:
        caller = caller_of(context)
        rule_id = parse_int_id(request.rule_id, "rule_id")
        return await self.service.delete_rule(request, caller, rule_id)

    async def ListAlertRules(self, request: pb.ListAlertRulesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListAlertRulesResponse:
        mall_id = str(parse_int_id(request.mall_id, "mall_id"))
        require_mall(caller_of(context), mall_id, "listing alert rules")
        page = await self.service.rules(mall_id, page_size(request.page_size), after_id(request.page_token))
        return pb.ListAlertRulesResponse(rules=[rule_to_proto(r) for r in page.items],
                                         next_page_token=page.next_token(lambda r: {"after": r.id}))

    # ----- alerts

    async def ListAlerts(self, request: pb.ListAlertsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListAlertsResponse:
        query = alert_query(request.filter, caller_of(context))
        limit = page_size(request.page_size)
        page = await self.service.alerts(query, limit, after_id(request.page_token) or None)
        return pb.ListAlertsResponse(alerts=[alert_to_proto(*row) for row in page.items],
                                     next_page_token=page.next_token(lambda row: {"after": row[0].id}))

    async def GetAlert(self, request: pb.GetAlertRequest, context: grpc.aio.ServicerContext) -> pb.GetAlertResponse:
        alert_id = parse_int_id(request.alert_id, "alert_id")
        found = await self.service.alert(caller_of(context), alert_id)
        orders = found.orders
        return pb.GetAlertResponse(alert=alert_to_proto(*found.alert, orders.get(alert_id)),
                                   member_alerts=[alert_to_proto(*s, orders.get(s[0].id)) for s in found.member_alerts])

    async def ExportAlerts(self, request: pb.ExportAlertsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ExportAlertsResponse:
        caller = caller_of(context)
        require_super_admin(caller, "exporting alerts")
        query = alert_query(request.filter, caller)
        encoding = known_enum(pb.ExportEncoding, request.encoding, "encoding")
        rows, zones = await self.service.export(query)
        charset = "GB18030" if encoding == pb.EXPORT_ENCODING_GB18030 else "UTF-8"
        stamp = self.clock().strftime("%Y%m%d%H%M%S")
        return pb.ExportAlertsResponse(filename=f"异常会员预警_{stamp}.csv",
                                       content_type=f"text/csv; charset={charset}",
                                       content=alerts_csv(rows, encoding, zones), row_count=len(rows))

    async def DisableAlertMember(self, request: pb.DisableAlertMemberRequest,
                                 context: grpc.aio.ServicerContext) -> pb.DisableAlertMemberResponse:
        caller = caller_of(context)
        alert_id = parse_int_id(request.alert_id, "alert_id")
        if not request.request_id:
            raise InvalidArgument("is required", field="request_id")
        return await self.service.disable_member(request, caller, alert_id)

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
        page = await self.service.digests(mall_id, limit, before)
        return pb.ListDigestsResponse(digests=[digest_to_proto(d) for d in page.items],
                                      next_page_token=page.next_token(lambda d: {"d": d.local_date}))

    # ----- whitelist

    async def AddWhitelistEntry(self, request: pb.AddWhitelistEntryRequest,
                                context: grpc.aio.ServicerContext) -> pb.AddWhitelistEntryResponse:
        caller = caller_of(context)
        require_admin(caller, "whitelisting a member")
        parse_int_id(request.member_id, "member_id")
        if len(request.reason) > MAX_REASON:
            raise InvalidArgument(f"must be at most {MAX_REASON} characters", field="reason")
        return await self.service.add_entry(request, caller, request.member_id, request.reason.strip())

    async def RemoveWhitelistEntry(self, request: pb.RemoveWhitelistEntryRequest,
                                   context: grpc.aio.ServicerContext) -> pb.RemoveWhitelistEntryResponse:
        require_admin(caller_of(context), "removing a whitelist entry")
        parse_int_id(request.member_id, "member_id")
        return await self.service.remove_entry(request, request.member_id)

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
        page = await self.service.entries(limit, after)
        return pb.ListWhitelistEntriesResponse(
            entries=[entry_to_proto(e) for e in page.items],
            next_page_token=page.next_token(lambda e: {"t": aware(e.created_at).isoformat(), "m": e.member_id}))
