"""crowdpack.ledger.v1.LedgerService over gRPC.

Each method checks its request (INVALID_ARGUMENT names the field, nothing is written), then
runs its change through the group commit with ``run_idempotent`` keyed by request_id. Reads go
to the reader. Domain rules live in the modules the methods call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, Role, caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument, NotFound, PermissionDenied
from services.common.pagination import decode_token, keyset_page, page_size
from services.common.scope import require_managed_mall, require_member_staff
from services.common.validation import bounded_text, known_enum, parse_int_id
from services.ledger import adjustments, order_list, orders, reversals, statements, voucher_files, vouchers
from services.ledger.commands import PostEntriesCommand, PostEntryCommand, RecordOrderCommand
from services.ledger.commit import GroupCommit
from services.ledger.convert import account_to_proto, order_to_proto, template_to_proto
from services.ledger.inputs import (
    id_text,
    member_id,
    optional_time,
    parse_order,
    parse_posting,
    past_time,
    positive_amount,
)
from services.ledger.models import IdempotencyRecord
from services.ledger.postings import Posting
from services.ledger.reason_templates import TemplateRepository, template_name
from services.ledger.repository import AccountRepository
from services.ledger.rules import (
    BUILT_IN,
    DEFAULT_MALL,
    RuleRepository,
    check_rule_places,
    parse_rule,
    rule_to_proto,
)
from services.ledger.scope import require_visible

MAX_POSTINGS = 10_000
RULE_SETTERS = (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN)


def mutator(context: grpc.aio.ServicerContext) -> Caller:
    """The caller of a mutation: administrators or the system. Members act through the services that serve
    them, never directly; sales have no member ledger (services/common/scope.py)."""
    caller = caller_of(context)
    if caller.role == Role.MEMBER:
        raise PermissionDenied("members cannot change the ledger directly", field="role")
    require_member_staff(caller, "change members' ledgers")
    return caller


def check_postings_malls(caller: Caller, postings: list[Posting]) -> None:
    """A mall admin's postings each name one of their malls."""
    for p in postings:
        require_managed_mall(caller, p.mall_id, p.at("mall_id"))


def own_member_only(context: grpc.aio.ServicerContext, member_id: str) -> None:
    """A member caller reads only its own accounts (by member_id; an account_id alone is not enough)."""
    caller = caller_of(context)
    if caller.role == Role.MEMBER and member_id != caller.staff_id:
        raise PermissionDenied("a member reads only their own accounts", field="member_id")


def template_id(value: str) -> int:
    return parse_int_id(value, "reason_template_id")


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, db: Database, commits: GroupCommit | None = None) -> None:
        self.db = db
        self.commits = commits or GroupCommit(db, IdempotencyRecord)

    # Accounts and journal

    async def GetBalances(self, request: pb.GetBalancesRequest,
                          context: grpc.aio.ServicerContext) -> pb.GetBalancesResponse:
        own_member_only(context, request.member_id)
        member = member_id(request.member_id)
        which = known_enum(pb.Asset, request.asset, "asset")
        caller = caller_of(context)
        async with self.db.read() as session:
            accounts = await AccountRepository(session).for_member(member, which)
            if not accounts:
                raise NotFound(f"member {member} has no accounts", field="member_id")
            await require_visible(session, caller, member)
        return pb.GetBalancesResponse(accounts=[account_to_proto(a) for a in accounts])

    async def PostEntry(self, request: pb.PostEntryRequest, context: grpc.aio.ServicerContext) -> pb.PostEntryResponse:
        caller = mutator(context)
        now = utcnow()
        posting = parse_posting(request.posting, "posting", now)
        check_postings_malls(caller, [posting])
        answer = await self.commits.submit(PostEntryCommand(request, posting, caller.staff_id))
        return cast(pb.PostEntryResponse, answer)

    async def PostEntries(self, request: pb.PostEntriesRequest,
                          context: grpc.aio.ServicerContext) -> pb.PostEntriesResponse:
        caller = mutator(context)
        if not request.postings:
            raise InvalidArgument("must hold at least one posting", field="postings")
        if len(request.postings) > MAX_POSTINGS:
            raise InvalidArgument(f"must hold at most {MAX_POSTINGS} postings", field="postings")
        now = utcnow()
        postings = [parse_posting(p, f"postings[{i}]", now) for i, p in enumerate(request.postings)]
        check_postings_malls(caller, postings)
        answer = await self.commits.submit(PostEntriesCommand(request, postings, caller.staff_id))
        return cast(pb.PostEntriesResponse, answer)

    async def ReverseEntry(self, request: pb.ReverseEntryRequest,
                           context: grpc.aio.ServicerContext) -> pb.ReverseEntryResponse:
        caller = mutator(context)
        entry_id = parse_int_id(request.entry_id, "entry_id")
        note = bounded_text(request.note, "note")
        now = utcnow()
        return await self.commits.idempotent(
            "ReverseEntry", request, pb.ReverseEntryResponse,
            lambda session: reversals.reverse_entry(session, request.request_id, entry_id, note, now=now,
                                                    caller=caller))

    async def ListEntries(self, request: pb.ListEntriesRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListEntriesResponse:
        caller = caller_of(context)


        own_member_only(context, request.member_id)
        async with self.db.read() as session:
            return await statements.list_entries(session, request, lambda m: require_visible(session, caller, m))

    # Manual adjustments and their reason templates

    async def AdjustBalance(self, request: pb.AdjustBalanceRequest,
                            context: grpc.aio.ServicerContext) -> pb.AdjustBalanceResponse:
        caller = mutator(context)
        now = utcnow()
        posting = adjustments.parse_adjustment(request, caller, now)
        return await self.commits.idempotent(
            "AdjustBalance", request, pb.AdjustBalanceResponse,
            lambda session: adjustments.adjust(session, request.request_id, posting, now=now, caller=caller))

    async def CreateReasonTemplate(self, request: pb.CreateReasonTemplateRequest,
                                   context: grpc.aio.ServicerContext) -> pb.CreateReasonTemplateResponse:
        caller = mutator(context)
        which = known_enum(pb.Asset, request.asset, "asset")
        name = template_name(request.name)

        async def work(session: AsyncSession) -> pb.CreateReasonTemplateResponse:
            template = await TemplateRepository(session).create(which, name, caller.staff_id, utcnow())
            return pb.CreateReasonTemplateResponse(reason_template=template_to_proto(template))

        return await self.commits.idempotent("CreateReasonTemplate", request, pb.CreateReasonTemplateResponse, work)

    async def GetReasonTemplate(self, request: pb.GetReasonTemplateRequest,
                                context: grpc.aio.ServicerContext) -> pb.GetReasonTemplateResponse:
        wanted = template_id(request.reason_template_id)
        async with self.db.read() as session:
            template = await TemplateRepository(session).live(wanted)
            return pb.GetReasonTemplateResponse(reason_template=template_to_proto(template))

    async def ListReasonTemplates(self, request: pb.ListReasonTemplatesRequest,
                                  context: grpc.aio.ServicerContext) -> pb.ListReasonTemplatesResponse:
        limit = page_size(request.page_size)
        which = known_enum(pb.Asset, request.asset, "asset")
        cursor = decode_token(request.page_token)
        before = None
        if cursor is not None:
            before = cursor.get("before")
            if not isinstance(before, int) or cursor.get("asset") != which:
                raise InvalidArgument("is not a token this list returned", field="page_token")
        async with self.db.read() as session:
            repo = TemplateRepository(session)
            page = await keyset_page(lambda n: repo.page(n, before, which), limit)
        return pb.ListReasonTemplatesResponse(reason_templates=[template_to_proto(t) for t in page.items],
                                              next_page_token=page.next_token(lambda t: {"before": t.id,
                                                                                         "asset": which}))

    async def UpdateReasonTemplate(self, request: pb.UpdateReasonTemplateRequest,
                                   context: grpc.aio.ServicerContext) -> pb.UpdateReasonTemplateResponse:
        caller = mutator(context)
        wanted = template_id(request.reason_template_id)
        name = template_name(request.name)

        async def work(session: AsyncSession) -> pb.UpdateReasonTemplateResponse:
            template = await TemplateRepository(session).rename(wanted, name, caller.staff_id, utcnow())
            return pb.UpdateReasonTemplateResponse(reason_template=template_to_proto(template))

        return await self.commits.idempotent("UpdateReasonTemplate", request, pb.UpdateReasonTemplateResponse, work)

    async def DeleteReasonTemplate(self, request: pb.DeleteReasonTemplateRequest,
                                   context: grpc.aio.ServicerContext) -> pb.DeleteReasonTemplateResponse:
        caller = mutator(context)
        wanted = template_id(request.reason_template_id)

        async def work(session: AsyncSession) -> pb.DeleteReasonTemplateResponse:
            template = await TemplateRepository(session).delete(wanted, caller.staff_id, utcnow())
            return pb.DeleteReasonTemplateResponse(reason_template=template_to_proto(template))

        return await self.commits.idempotent("DeleteReasonTemplate", request, pb.DeleteReasonTemplateResponse, work)

    # Orders

    async def RecordOrder(self, request: pb.RecordOrderRequest,
                          context: grpc.aio.ServicerContext) -> pb.RecordOrderResponse:
        caller = mutator(context)
        now = utcnow()
        order = parse_order(request, now)
        require_managed_mall(caller, order.mall_id)
        answer = await self.commits.submit(RecordOrderCommand(request, order, caller.staff_id))
        return cast(pb.RecordOrderResponse, answer)

    async def RefundOrder(self, request: pb.RefundOrderRequest,
                          context: grpc.aio.ServicerContext) -> pb.RefundOrderResponse:
        caller = mutator(context)
        now = utcnow()
        order_id = parse_int_id(request.order_id, "order_id")
        amount = positive_amount(request.amount, "amount")
        occurred_at = past_time(request, "occur_time", now) or now
        return await self.commits.idempotent(
            "RefundOrder", request, pb.RefundOrderResponse,
            lambda session: orders.refund_order(session, request.request_id, order_id, amount, occurred_at, now=now,
                                                caller=caller))

    # Vouchers

    async def RedeemVoucher(self, request: pb.RedeemVoucherRequest,
                            context: grpc.aio.ServicerContext) -> pb.RedeemVoucherResponse:
        caller = mutator(context)
        now = utcnow()
        redemption = vouchers.parse_redemption(request, now)
        require_managed_mall(caller, redemption.mall_id)
        return await self.commits.idempotent(
            "RedeemVoucher", request, pb.RedeemVoucherResponse,
            lambda session: vouchers.redeem(session, request.request_id, redemption, now=now,
                                            operator_id=caller.staff_id))

    async def GetVoucherRedemption(self, request: pb.GetVoucherRedemptionRequest,
                                   context: grpc.aio.ServicerContext) -> pb.GetVoucherRedemptionResponse:
        caller = caller_of(context)
        async with self.db.read() as session:
            redemption = await vouchers.find(session, request)
            await require_visible(session, caller, redemption.member_id)
            return pb.GetVoucherRedemptionResponse(redemption=vouchers.redemption_to_proto(redemption))

    async def GetOrder(self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> pb.GetOrderResponse:
        caller = caller_of(context)
        async with self.db.read() as session:
            order = await orders.find_order(session, request)
            await require_visible(session, caller, order.member_id)
            return pb.GetOrderResponse(order=order_to_proto(order))

    async def GetConsumptionSummary(self, request: pb.GetConsumptionSummaryRequest,
                                    context: grpc.aio.ServicerContext) -> pb.GetConsumptionSummaryResponse:
        member = member_id(request.member_id)
        start, end = optional_time(request, "start_time"), optional_time(request, "end_time")
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("must be after start_time", field="end_time")
        channels = sorted({known_enum(pb.OrderChannel, c, f"channels[{i}]", allow_unspecified=False)
                           for i, c in enumerate(request.channels)})
        caller = caller_of(context)
        async with self.db.read() as session:
            if not await AccountRepository(session).for_member(member):
                raise NotFound(f"no member {member}", field="member_id")
            await require_visible(session, caller, member)
            rows = await orders.OrderRepository(session).consumption(member, start, end, channels)
        return orders.summarize(member, rows)

    async def ListMemberOrders(self, request: pb.ListMemberOrdersRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListMemberOrdersResponse:
        filt = order_list.parse_filter(request)
        caller = caller_of(context)
        async with self.db.read() as session:
            if not await AccountRepository(session).for_member(filt.member_id):
                raise NotFound(f"no member {filt.member_id}", field="member_id")
            await require_visible(session, caller, filt.member_id)
            return await order_list.list_member_orders(session, request, filt)

    # 变动凭证: the files backing manual adjustments

    async def UploadVoucherFile(self, request_iterator: AsyncIterator[pb.UploadVoucherFileRequest],
                                context: grpc.aio.ServicerContext) -> pb.UploadVoucherFileResponse:
        caller = mutator(context)
        request_id, member, name, content = await voucher_files.receive(request_iterator)
        return await voucher_files.store(self.db, caller, request_id, member, name, content, utcnow())

    async def GetVoucherFile(self, request: pb.GetVoucherFileRequest,
                             context: grpc.aio.ServicerContext) -> pb.GetVoucherFileResponse:
        caller = caller_of(context)
        file_id = parse_int_id(request.file_id, "file_id")
        async with self.db.read() as session:
            return await voucher_files.fetch(session, caller, file_id)

    # Points rules

    async def SetPointsRule(self, request: pb.SetPointsRuleRequest,
                            context: grpc.aio.ServicerContext) -> pb.SetPointsRuleResponse:
        caller = mutator(context)
        rule = parse_rule(request.rule)
        if caller.role not in RULE_SETTERS:
            raise PermissionDenied(f"a {caller.role.value} may not set points rules", field="role")
        if caller.role == Role.MALL_ADMIN and (rule.mall_id == DEFAULT_MALL or rule.mall_id not in caller.mall_ids):
            raise PermissionDenied(f"operator {caller.staff_id} does not manage mall {rule.mall_id or '(default)'}",
                                   field="rule.mall_id")

        async def work(session: AsyncSession) -> pb.SetPointsRuleResponse:
            await check_rule_places(session, rule, request.rule.excluded_store_ids)
            stored = await RuleRepository(session).put(rule, operator_id=caller.staff_id, now=utcnow())
            return pb.SetPointsRuleResponse(rule=rule_to_proto(stored))

        return await self.commits.idempotent("SetPointsRule", request, pb.SetPointsRuleResponse, work)

    async def GetPointsRule(self, request: pb.GetPointsRuleRequest,
                            context: grpc.aio.ServicerContext) -> pb.GetPointsRuleResponse:
        mall = id_text(request.mall_id, "mall_id")
        async with self.db.read() as session:
            rule = (await RuleRepository(session).effective([mall]))[mall]
        return pb.GetPointsRuleResponse(rule=rule_to_proto(rule), built_in=rule is BUILT_IN)
