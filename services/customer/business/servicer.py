"""crowdpack.customer.v1.BusinessCustomerService: the B2B archive, contacts and ownership."""

from __future__ import annotations

import hashlib
from datetime import datetime

import grpc

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from crowdpack.customer.v1 import business_customer_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.pagination import decode_token, page_size
from services.common.validation import (
    aware,
    bounded_text,
    known_enum,
    mask_paths,
    optional_id,
    parse_int_id,
    to_timestamp,
)
from services.customer.business import contacts as contact_rules
from services.customer.business import fields
from services.customer.business.contacts import contact_to_proto, contact_values
from services.customer.business.convert import (
    application_to_proto,
    business_to_proto,
    follow_up_to_proto,
    transfer_to_proto,
)
from services.customer.business.fields import past_time
from services.customer.business.ownership import is_admin, require_staff, require_transfer_rights, staff_id_arg
from services.customer.business.service import BusinessService
from services.customer.ids import parse_ids

MAX_TRANSFER_IDS = 1000
BAD_TOKEN = "is not a token this list returned"
STATUSES = (pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL, pb.BUSINESS_CUSTOMER_STATUS_INTENT,
            pb.BUSINESS_CUSTOMER_STATUS_DEAL, pb.BUSINESS_CUSTOMER_STATUS_LOST)
GRADES = (pb.BUSINESS_CUSTOMER_GRADE_A, pb.BUSINESS_CUSTOMER_GRADE_B, pb.BUSINESS_CUSTOMER_GRADE_C,
          pb.BUSINESS_CUSTOMER_GRADE_D)
def _list_fingerprint(request: pb.ListBusinessCustomersRequest, caller: Caller) -> str:
    """Ties a page token to the filter, order and caller it was made for (AIP-158)."""
    digest = hashlib.sha256(request.filter.SerializeToString(deterministic=True))
    digest.update(f"|{request.order_by}|{request.ascending}|{caller.role}|{caller.staff_id}".encode())
    return digest.hexdigest()[:16]


def _validate_filter(f: pb.BusinessCustomerFilter) -> None:
    if len(f.search) > 100:
        raise InvalidArgument("must be at most 100 characters", field="filter.search")
    for status in f.statuses:
        known_enum(pb.BusinessCustomerStatus, status, "filter.statuses", allow_unspecified=False)
    for grade in f.grades:
        known_enum(pb.BusinessCustomerGrade, grade, "filter.grades", allow_unspecified=False)
    for value in f.tag_ids:
        parse_int_id(value, "filter.tag_ids")
    for value in f.group_ids:
        if value != "default":
            parse_int_id(value, "filter.group_ids")
    for name, maximum in (("industries", 50), ("owner_staff_ids", 64)):
        for value in getattr(f, name):
            if not value.strip() or len(value) > maximum:
                raise InvalidArgument(f"values must be 1..{maximum} characters", field=f"filter.{name}")


class BusinessCustomerServicer(pb_grpc.BusinessCustomerServiceServicer):
    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self.service = BusinessService(db, clock)
        self.clock = clock

    # --- the archive

    async def CreateBusinessCustomer(self, request: pb.CreateBusinessCustomerRequest,
                                     context: grpc.aio.ServicerContext) -> pb.CreateBusinessCustomerResponse:
        caller = caller_of(context)
        require_staff(caller)
        values = fields.archive_values(request, set(fields.ARCHIVE_FIELDS), creating=True)
        named_owner = staff_id_arg(request.owner_staff_id, "owner_staff_id") if request.owner_staff_id.strip() \
            else None
        if named_owner and named_owner != caller.staff_id and not is_admin(caller):
            raise PermissionDenied("a salesperson creates customers for themself", field="owner_staff_id")
        owner = named_owner or caller.staff_id
        return await self.service.create(request, caller, values, owner)

    async def GetBusinessCustomer(self, request: pb.GetBusinessCustomerRequest,
                                  context: grpc.aio.ServicerContext) -> pb.GetBusinessCustomerResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        return pb.GetBusinessCustomerResponse(business_customer=await self.service.get(caller, customer_id))

    async def UpdateBusinessCustomer(self, request: pb.UpdateBusinessCustomerRequest,
                                     context: grpc.aio.ServicerContext) -> pb.UpdateBusinessCustomerResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        for path in request.update_mask.paths:
            if path in ("code", "grade", "owner_staff_id"):
                how = {"code": "never changes", "grade": "is computed from revenue, years and status",
                       "owner_staff_id": "changes only by TransferBusinessCustomer"}[path]
                raise InvalidArgument(f"{path} {how}", field="update_mask")
        paths = set(mask_paths(request.update_mask, set(fields.UPDATABLE)))
        prefix = "business_customer."
        values = fields.archive_values(request.business_customer, paths, prefix)
        return await self.service.update(request, caller, customer_id, values, prefix)

    async def DeleteBusinessCustomer(self, request: pb.DeleteBusinessCustomerRequest,
                                     context: grpc.aio.ServicerContext) -> pb.DeleteBusinessCustomerResponse:
        caller = caller_of(context)
        require_staff(caller)
        return await self.service.delete(request, caller, parse_int_id(request.customer_id.strip(), "customer_id"))

    async def ListBusinessCustomers(self, request: pb.ListBusinessCustomersRequest,
                                    context: grpc.aio.ServicerContext) -> pb.ListBusinessCustomersResponse:
        caller = caller_of(context)
        require_staff(caller)
        limit = page_size(request.page_size)
        order_by = known_enum(pb.BusinessCustomerOrderBy, request.order_by, "order_by")
        _validate_filter(request.filter)
        fingerprint = _list_fingerprint(request, caller)
        after = self._cursor(request.page_token, fingerprint)
        found = await self.service.list(caller, request.filter, order_by=order_by, ascending=request.ascending,
                                        limit=limit, after=after, fingerprint=fingerprint)
        return pb.ListBusinessCustomersResponse(
            business_customers=[business_to_proto(row, contact_count=found.contact_counts.get(row.customer.id, 0),
                                                  tags=found.tags.get(row.customer.id, [])) for row in found.rows],
            next_page_token=found.next_page_token, total_size=found.total)

    @staticmethod
    def _cursor(token: str, fingerprint: str) -> tuple[datetime, int] | None:
        cursor = decode_token(token)
        if cursor is None:
            return None
        if cursor.get("f") != fingerprint:
            raise InvalidArgument(f"{BAD_TOKEN} for this filter and order", field="page_token")
        value, last_id = cursor.get("v"), cursor.get("id")
        if not isinstance(value, str) or not isinstance(last_id, int):
            raise InvalidArgument(BAD_TOKEN, field="page_token")
        try:
            return aware(datetime.fromisoformat(value)), last_id
        except ValueError:
            raise InvalidArgument(BAD_TOKEN, field="page_token") from None

    async def GetBusinessCustomerStatistics(
            self, request: pb.GetBusinessCustomerStatisticsRequest,
            context: grpc.aio.ServicerContext) -> pb.GetBusinessCustomerStatisticsResponse:
        caller = caller_of(context)
        require_staff(caller)
        owner = staff_id_arg(request.owner_staff_id, "owner_staff_id") if request.owner_staff_id.strip() else None
        rows = await self.service.statistics_rows(caller, owner)
        by_status = dict.fromkeys(STATUSES, 0)
        by_grade = dict.fromkeys(GRADES, 0)
        total = revenue = years = 0
        for status, grade, count, revenue_sum, years_sum in rows:
            by_status[status] = by_status.get(status, 0) + count
            by_grade[grade] = by_grade.get(grade, 0) + count
            total, revenue, years = total + count, revenue + revenue_sum, years + years_sum
        return pb.GetBusinessCustomerStatisticsResponse(statistics=pb.BusinessCustomerStatistics(
            total=total,
            by_status=[pb.BusinessCustomerStatusCount(status=s, count=n) for s, n in by_status.items()],
            by_grade=[pb.BusinessCustomerGradeCount(grade=g, count=n) for g, n in by_grade.items()],
            total_annual_revenue_fen=revenue, average_cooperation_years=years / total if total else 0.0,
            compute_time=to_timestamp(self.clock())))

    # --- ownership

    async def TransferBusinessCustomer(self, request: pb.TransferBusinessCustomerRequest,
                                       context: grpc.aio.ServicerContext) -> pb.TransferBusinessCustomerResponse:
        caller = caller_of(context)
        require_transfer_rights(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        to_staff_id = staff_id_arg(request.to_staff_id, "to_staff_id")
        reason = bounded_text(request.reason, "reason", 500)
        return await self.service.transfer(request, caller, customer_id, to_staff_id, reason)

    async def BulkTransferBusinessCustomers(
            self, request: pb.BulkTransferBusinessCustomersRequest,
            context: grpc.aio.ServicerContext) -> pb.BulkTransferBusinessCustomersResponse:
        caller = caller_of(context)
        require_transfer_rights(caller)
        from_staff_id = request.from_staff_id.strip()
        if bool(from_staff_id) == bool(request.customer_ids):
            raise InvalidArgument("give exactly one of from_staff_id and customer_ids", field="from_staff_id")
        if from_staff_id:
            from_staff_id = staff_id_arg(from_staff_id, "from_staff_id")
        ids = parse_ids(request.customer_ids, "customer_ids", MAX_TRANSFER_IDS) if request.customer_ids else []
        to_staff_id = staff_id_arg(request.to_staff_id, "to_staff_id")
        if from_staff_id == to_staff_id:
            raise InvalidArgument("must differ from from_staff_id", field="to_staff_id")
        reason = bounded_text(request.reason, "reason", 500)
        return await self.service.transfer_many(request, caller, from_staff_id, ids, to_staff_id, reason)

    # --- transfer applications

    async def CreateTransferApplication(
            self, request: pb.CreateTransferApplicationRequest,
            context: grpc.aio.ServicerContext) -> pb.CreateTransferApplicationResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        to_staff_id = staff_id_arg(request.to_staff_id, "to_staff_id")
        reason = bounded_text(request.reason, "reason", 500)
        return await self.service.apply_for_transfer(request, caller, customer_id, to_staff_id, reason)

    async def ApproveTransferApplication(
            self, request: pb.ApproveTransferApplicationRequest,
            context: grpc.aio.ServicerContext) -> pb.ApproveTransferApplicationResponse:
        return await self.service.approve_transfer(request, *_decision(request, context))

    async def RejectTransferApplication(
            self, request: pb.RejectTransferApplicationRequest,
            context: grpc.aio.ServicerContext) -> pb.RejectTransferApplicationResponse:
        return await self.service.reject_transfer(request, *_decision(request, context))

    async def ListTransferApplications(
            self, request: pb.ListTransferApplicationsRequest,
            context: grpc.aio.ServicerContext) -> pb.ListTransferApplicationsResponse:
        caller = caller_of(context)
        require_staff(caller)
        limit = page_size(request.page_size)
        states = sorted({known_enum(pb.TransferApplicationState, s, "states", allow_unspecified=False)
                         for s in request.states})
        customer_id = optional_id(request.customer_id, "customer_id")
        fingerprint = hashlib.sha256(
            f"{states}|{customer_id}|{caller.role}|{caller.staff_id}".encode()).hexdigest()[:16]
        before = self._before(request.page_token, fingerprint)
        page = await self.service.applications(caller, states, customer_id, limit, before)
        return pb.ListTransferApplicationsResponse(
            transfer_applications=[application_to_proto(a) for a in page.items],
            next_page_token=page.next_token(lambda a: {"before": a.id, "f": fingerprint}))

    async def ListOwnershipTransfers(self, request: pb.ListOwnershipTransfersRequest,
                                     context: grpc.aio.ServicerContext) -> pb.ListOwnershipTransfersResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        limit = page_size(request.page_size)
        before = self._before(request.page_token, str(customer_id))
        page = await self.service.transfers(caller, customer_id, limit, before)
        return pb.ListOwnershipTransfersResponse(
            transfers=[transfer_to_proto(t) for t in page.items],
            next_page_token=page.next_token(lambda t: {"before": t.id, "f": str(customer_id)}))

    @staticmethod
    def _before(token: str, fingerprint: str) -> int | None:
        """The id a newest-first page continues below; the token must be from the same list."""
        cursor = decode_token(token)
        if cursor is None:
            return None
        before = cursor.get("before")
        if not isinstance(before, int) or cursor.get("f") != fingerprint:
            raise InvalidArgument(BAD_TOKEN, field="page_token")
        return before

    # --- contacts

    async def CreateContact(self, request: pb.CreateContactRequest,
                            context: grpc.aio.ServicerContext) -> pb.CreateContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        values = contact_values(request, set(contact_rules.CONTACT_FIELDS))
        return await self.service.create_contact(request, caller, customer_id, values)

    async def GetContact(self, request: pb.GetContactRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        contact_id = parse_int_id(request.contact_id.strip(), "contact_id")
        return pb.GetContactResponse(contact=contact_to_proto(await self.service.contact(caller, contact_id)))

    async def UpdateContact(self, request: pb.UpdateContactRequest,
                            context: grpc.aio.ServicerContext) -> pb.UpdateContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        contact_id = parse_int_id(request.contact_id.strip(), "contact_id")
        paths = set(mask_paths(request.update_mask, set(contact_rules.UPDATABLE)))
        values = contact_values(request.contact, paths, "contact.")
        return await self.service.update_contact(request, caller, contact_id, values)

    async def DeleteContact(self, request: pb.DeleteContactRequest,
                            context: grpc.aio.ServicerContext) -> pb.DeleteContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        return await self.service.delete_contact(request, caller,
                                                 parse_int_id(request.contact_id.strip(), "contact_id"))

    async def ListContacts(self, request: pb.ListContactsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListContactsResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = None
        if cursor is not None:
            primary, last_id = cursor.get("p"), cursor.get("id")
            if not isinstance(primary, bool) or not isinstance(last_id, int) or cursor.get("c") != customer_id:
                raise InvalidArgument(BAD_TOKEN, field="page_token")
            after = (primary, last_id)
        page = await self.service.contacts(caller, customer_id, limit, after)
        return pb.ListContactsResponse(
            contacts=[contact_to_proto(c) for c in page.items],
            next_page_token=page.next_token(lambda c: {"p": c.is_primary, "id": c.id, "c": customer_id}))

    async def SearchContacts(self, request: pb.SearchContactsRequest,
                             context: grpc.aio.ServicerContext) -> pb.SearchContactsResponse:
        caller = caller_of(context)
        require_staff(caller)
        if len(request.query) > 100:
            raise InvalidArgument("must be at most 100 characters", field="query")
        limit = page_size(request.page_size)
        fingerprint = hashlib.sha256(f"{request.query}|{caller.role}|{caller.staff_id}".encode()).hexdigest()[:16]
        before = self._before(request.page_token, fingerprint)
        page = await self.service.search_contacts(caller, request.query, limit, before)
        return pb.SearchContactsResponse(contacts=[contact_to_proto(c, name) for c, name in page.items],
                                         next_page_token=page.next_token(lambda r: {"before": r[0].id,
                                                                                    "f": fingerprint}))

    # --- follow-ups

    async def CreateFollowUp(self, request: pb.CreateFollowUpRequest,
                             context: grpc.aio.ServicerContext) -> pb.CreateFollowUpResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        when = past_time(request, "follow_up_time", "follow_up_time")
        method = known_enum(pb.FollowUpMethod, request.method, "method")
        if method == pb.FOLLOW_UP_METHOD_UNSPECIFIED:
            raise InvalidArgument("is required: visit, call, WeChat or email", field="method")
        contact_id = optional_id(request.contact_id, "contact_id")
        content = bounded_text(request.content, "content", 2000)
        if not content:
            raise InvalidArgument("is required: what was said", field="content")
        return await self.service.create_follow_up(request, caller, customer_id, when, method, contact_id, content)

    async def ListFollowUps(self, request: pb.ListFollowUpsRequest,
                            context: grpc.aio.ServicerContext) -> pb.ListFollowUpsResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        limit = page_size(request.page_size)
        after = None
        cursor = decode_token(request.page_token)
        if cursor is not None:
            value, last_id = cursor.get("t"), cursor.get("id")
            if not isinstance(value, str) or not isinstance(last_id, int) or cursor.get("c") != customer_id:
                raise InvalidArgument(BAD_TOKEN, field="page_token")
            try:
                after = (aware(datetime.fromisoformat(value)), last_id)
            except ValueError:
                raise InvalidArgument(BAD_TOKEN, field="page_token") from None
        page = await self.service.follow_ups(caller, customer_id, limit, after)
        return pb.ListFollowUpsResponse(
            follow_ups=[follow_up_to_proto(f) for f in page.items],
            next_page_token=page.next_token(lambda f: {"t": aware(f.followed_up_at).isoformat(), "id": f.id,
                                                        "c": customer_id}))


def _decision(request: pb.ApproveTransferApplicationRequest | pb.RejectTransferApplicationRequest,
              context: grpc.aio.ServicerContext) -> tuple[Caller, int, str]:
    """An administrator's decision on a transfer application: the caller (allowed to decide), the id, the note."""
    caller = caller_of(context)
    require_transfer_rights(caller)
    application_id = parse_int_id(request.transfer_application_id.strip(), "transfer_application_id")
    return caller, application_id, bounded_text(request.decision_note, "decision_note", 500)
