"""crowdpack.customer.v1.BusinessCustomerService: the B2B archive, contacts and ownership."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import grpc
from sqlalchemy import and_, true
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from crowdpack.customer.v1 import business_customer_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import aware, bounded_text, known_enum, mask_paths, parse_int_id, to_timestamp
from services.customer import timeline
from services.customer.business import contacts as contact_rules
from services.customer.business import fields
from services.customer.business.codes import next_code
from services.customer.business.contacts import contact_to_proto, contact_values
from services.customer.business.convert import business_to_proto, transfer_to_proto
from services.customer.business.grade import GRADE_INPUTS, compute_grade
from services.customer.business.models import KIND_BUSINESS, BusinessProfile, Contact
from services.customer.business.ownership import (
    check_new_owner, check_owner, is_admin, owned_scope, require_staff, require_transfer_rights, staff_id_arg,
    transfer,
)
from services.customer.business.repository import BusinessRepository, BusinessRow, filter_clauses
from services.customer.classification import tagging
from services.customer.ids import parse_ids
from services.customer.models import Customer, IdempotencyRecord

MAX_TRANSFER_IDS = 1000
BAD_TOKEN = "is not a token this list returned"
STATUSES = (pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL, pb.BUSINESS_CUSTOMER_STATUS_INTENT,
            pb.BUSINESS_CUSTOMER_STATUS_DEAL, pb.BUSINESS_CUSTOMER_STATUS_LOST)
GRADES = (pb.BUSINESS_CUSTOMER_GRADE_A, pb.BUSINESS_CUSTOMER_GRADE_B, pb.BUSINESS_CUSTOMER_GRADE_C,
          pb.BUSINESS_CUSTOMER_GRADE_D)
# Column names as the API (and so the timeline) calls them.
API_NAMES = {"last_follow_up_at": "last_follow_up_time"}


def _comparable(value: Any) -> Any:
    return aware(value) if isinstance(value, datetime) else value


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
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- helpers

    @staticmethod
    async def _owned(session: AsyncSession, caller: Caller, customer_id: int, *, lock: bool = False) -> BusinessRow:
        row = await BusinessRepository(session).get(customer_id, lock=lock)
        if row is None:
            raise NotFound(f"no business customer {customer_id}", field="customer_id")
        check_owner(caller, row)
        return row

    @staticmethod
    async def _view(session: AsyncSession, row: BusinessRow) -> pb.BusinessCustomer:
        repo = BusinessRepository(session)
        customer_id = row.customer.id
        return business_to_proto(row, contact_count=(await repo.contact_counts([customer_id])).get(customer_id, 0),
                                 tags=(await repo.tags_of([customer_id])).get(customer_id, []))

    @staticmethod
    async def _check_refs(repo: BusinessRepository, values: dict[str, Any], customer_id: int | None,
                          prefix: str = "") -> None:
        for column, name in ((Customer.phone, "phone"), (Customer.email, "email")):
            value = values.get(name)
            if value:
                holder = await repo.customer_id_by(column, value)
                if holder is not None and holder != customer_id:
                    raise AlreadyExists(f"a customer with this {name} exists", field=prefix + name)
        group_id = values.get("group_id")
        if group_id is not None and not await repo.group_exists(group_id):
            raise NotFound(f"no group {group_id}", field=prefix + "group_id")

    @staticmethod
    async def _contact(session: AsyncSession, caller: Caller, contact_id: int, *, lock: bool = False) -> Contact:
        contact = await BusinessRepository(session).contact(contact_id)
        if contact is None:
            raise NotFound(f"no contact {contact_id}", field="contact_id")
        # Locking the customer serialises changes to its contacts (the primary swap).
        await BusinessCustomerServicer._owned(session, caller, contact.customer_id, lock=lock)
        return contact

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
        customer_values = {k: v for k, v in values.items() if k in fields.CUSTOMER_COLUMNS}
        profile_values = {k: v for k, v in values.items() if k in fields.PROFILE_COLUMNS}
        grade = compute_grade(profile_values["status"], profile_values["annual_revenue_fen"],
                              profile_values["cooperation_years"])

        async def create(session: AsyncSession) -> pb.CreateBusinessCustomerResponse:
            repo = BusinessRepository(session)
            await self._check_refs(repo, values, None)
            if owner != caller.staff_id:
                await check_new_owner(session, owner, "owner_staff_id")
            now = utcnow()
            code = await next_code(session, now)
            row = await repo.add(
                Customer(kind=KIND_BUSINESS, registered_at=now, created_at=now, updated_at=now, **customer_values),
                BusinessProfile(code=code, owner_staff_id=owner, created_by=caller.staff_id, grade=grade,
                                **profile_values))
            timeline.record(session, row.customer.id, "created", caller.staff_id, customer_kind="business", code=code,
                            owner_staff_id=owner, grade=fields.timeline_value("grade", grade))
            return pb.CreateBusinessCustomerResponse(business_customer=await self._view(session, row))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateBusinessCustomer", request,
                                    pb.CreateBusinessCustomerResponse, create)

    async def GetBusinessCustomer(self, request: pb.GetBusinessCustomerRequest,
                                  context: grpc.aio.ServicerContext) -> pb.GetBusinessCustomerResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        async with self.db.read() as session:
            row = await self._owned(session, caller, customer_id)
            return pb.GetBusinessCustomerResponse(business_customer=await self._view(session, row))

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

        async def update(session: AsyncSession) -> pb.UpdateBusinessCustomerResponse:
            row = await self._owned(session, caller, customer_id, lock=True)
            await self._check_refs(BusinessRepository(session), values, customer_id, prefix)
            changed: dict[str, tuple[Any, Any]] = {}
            for column, new in values.items():
                target = row.customer if column in fields.CUSTOMER_COLUMNS else row.profile
                old = getattr(target, column)
                if _comparable(old) != new:
                    changed[column] = (old, new)
                    setattr(target, column, new)
            if changed.keys() & GRADE_INPUTS:
                p = row.profile
                grade = compute_grade(p.status, p.annual_revenue_fen, p.cooperation_years)
                if grade != p.grade:
                    changed["grade"] = (p.grade, grade)
                    p.grade = grade
            if changed:
                row.customer.updated_at = utcnow()
                await session.flush()
                for column, (old, new) in changed.items():
                    timeline.record(session, customer_id, "attribute_changed", caller.staff_id,
                                    field=API_NAMES.get(column, column),
                                    **{"from": fields.timeline_value(column, old),
                                       "to": fields.timeline_value(column, new)})
            return pb.UpdateBusinessCustomerResponse(business_customer=await self._view(session, row))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateBusinessCustomer", request,
                                    pb.UpdateBusinessCustomerResponse, update)

    async def DeleteBusinessCustomer(self, request: pb.DeleteBusinessCustomerRequest,
                                     context: grpc.aio.ServicerContext) -> pb.DeleteBusinessCustomerResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")

        async def delete(session: AsyncSession) -> pb.DeleteBusinessCustomerResponse:
            row = await self._owned(session, caller, customer_id, lock=True)
            now = utcnow()
            untagged = await tagging.remove_all_tags(session, customer_id, caller.staff_id, now)
            contacts = await BusinessRepository(session).delete_contacts(customer_id)
            timeline.record(session, customer_id, "deleted", caller.staff_id, code=row.profile.code,
                            phone=row.customer.phone, email=row.customer.email, removed_contacts=contacts,
                            removed_tags=untagged)
            # The phone and email are released for other customers; the timeline keeps them.
            row.customer.phone = row.customer.email = None
            row.customer.deleted_at = row.customer.updated_at = now
            await session.flush()
            return pb.DeleteBusinessCustomerResponse(customer_id=str(customer_id), delete_time=to_timestamp(now))

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteBusinessCustomer", request,
                                    pb.DeleteBusinessCustomerResponse, delete)

    async def ListBusinessCustomers(self, request: pb.ListBusinessCustomersRequest,
                                    context: grpc.aio.ServicerContext) -> pb.ListBusinessCustomersResponse:
        caller = caller_of(context)
        scope = owned_scope(caller)
        limit = page_size(request.page_size)
        order_by = known_enum(pb.BusinessCustomerOrderBy, request.order_by, "order_by")
        _validate_filter(request.filter)
        fingerprint = _list_fingerprint(request, caller)
        after = self._cursor(request.page_token, fingerprint)
        where = [*scope, *filter_clauses(request.filter)]
        async with self.db.read() as session:
            repo = BusinessRepository(session)
            rows = await repo.page(where=where, order_by=order_by, ascending=request.ascending, limit=limit + 1,
                                   after=after)
            page = rows[:limit]
            ids = [row.customer.id for row, _ in page]
            counts, tags = await repo.contact_counts(ids), await repo.tags_of(ids)
            total = await repo.count(where)
        token = ""
        if len(rows) > limit:
            last, sort_key = page[-1]
            token = encode_token({"f": fingerprint, "v": aware(sort_key).isoformat(), "id": last.customer.id})
        return pb.ListBusinessCustomersResponse(
            business_customers=[business_to_proto(row, contact_count=counts.get(row.customer.id, 0),
                                                  tags=tags.get(row.customer.id, [])) for row, _ in page],
            next_page_token=token, total_size=total)

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
        where = owned_scope(caller)
        if request.owner_staff_id.strip():
            where.append(BusinessProfile.owner_staff_id == staff_id_arg(request.owner_staff_id, "owner_staff_id"))
        async with self.db.read() as session:
            rows = await BusinessRepository(session).statistics_rows(where)
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
            compute_time=to_timestamp(utcnow())))

    # --- ownership

    async def TransferBusinessCustomer(self, request: pb.TransferBusinessCustomerRequest,
                                       context: grpc.aio.ServicerContext) -> pb.TransferBusinessCustomerResponse:
        caller = caller_of(context)
        require_transfer_rights(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        to_staff_id = staff_id_arg(request.to_staff_id, "to_staff_id")
        reason = bounded_text(request.reason, "reason", 500)

        async def transfer_one(session: AsyncSession) -> pb.TransferBusinessCustomerResponse:
            row = await self._owned(session, caller, customer_id, lock=True)
            if row.profile.owner_staff_id == to_staff_id:
                raise FailedPrecondition(f"customer {customer_id} is already owned by {to_staff_id}",
                                         field="to_staff_id")
            await check_new_owner(session, to_staff_id, "to_staff_id")
            record = transfer(session, row, to_staff_id, caller.staff_id, reason, utcnow())
            await session.flush()
            return pb.TransferBusinessCustomerResponse(business_customer=await self._view(session, row),
                                                       transfer=transfer_to_proto(record))

        return await run_idempotent(self.db, IdempotencyRecord, "TransferBusinessCustomer", request,
                                    pb.TransferBusinessCustomerResponse, transfer_one)

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

        async def transfer_many(session: AsyncSession) -> pb.BulkTransferBusinessCustomersResponse:
            repo = BusinessRepository(session)
            if from_staff_id:
                rows = await repo.owned_by(from_staff_id)
            else:
                found = await repo.rows(ids)
                for customer_id in ids:
                    if customer_id not in found:
                        raise NotFound(f"no business customer {customer_id}", field="customer_ids")
                rows = [found[i] for i in ids]
            await check_new_owner(session, to_staff_id, "to_staff_id")
            now = utcnow()
            records = [transfer(session, row, to_staff_id, caller.staff_id, reason, now)
                       for row in rows if row.profile.owner_staff_id != to_staff_id]
            await session.flush()
            return pb.BulkTransferBusinessCustomersResponse(transfers=[transfer_to_proto(r) for r in records])

        return await run_idempotent(self.db, IdempotencyRecord, "BulkTransferBusinessCustomers", request,
                                    pb.BulkTransferBusinessCustomersResponse, transfer_many)

    async def ListOwnershipTransfers(self, request: pb.ListOwnershipTransfersRequest,
                                     context: grpc.aio.ServicerContext) -> pb.ListOwnershipTransfersResponse:
        caller = caller_of(context)
        require_staff(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        limit = page_size(request.page_size)
        before = self._before(request.page_token, str(customer_id))
        async with self.db.read() as session:
            await self._owned(session, caller, customer_id)
            rows = await BusinessRepository(session).transfers(customer_id, limit + 1, before)
        page = rows[:limit]
        token = encode_token({"before": page[-1].id, "f": str(customer_id)}) if len(rows) > limit else ""
        return pb.ListOwnershipTransfersResponse(transfers=[transfer_to_proto(t) for t in page], next_page_token=token)

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

        async def create(session: AsyncSession) -> pb.CreateContactResponse:
            await self._owned(session, caller, customer_id, lock=True)
            repo = BusinessRepository(session)
            if values["is_primary"]:
                await repo.unset_primary(customer_id)
            now = utcnow()
            contact = await repo.add_contact(Contact(customer_id=customer_id, created_at=now, updated_at=now,
                                                     **values))
            return pb.CreateContactResponse(contact=contact_to_proto(contact))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateContact", request, pb.CreateContactResponse,
                                    create)

    async def GetContact(self, request: pb.GetContactRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        contact_id = parse_int_id(request.contact_id.strip(), "contact_id")
        async with self.db.read() as session:
            contact = await self._contact(session, caller, contact_id)
        return pb.GetContactResponse(contact=contact_to_proto(contact))

    async def UpdateContact(self, request: pb.UpdateContactRequest,
                            context: grpc.aio.ServicerContext) -> pb.UpdateContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        contact_id = parse_int_id(request.contact_id.strip(), "contact_id")
        paths = set(mask_paths(request.update_mask, set(contact_rules.UPDATABLE)))
        values = contact_values(request.contact, paths, "contact.")

        async def update(session: AsyncSession) -> pb.UpdateContactResponse:
            contact = await self._contact(session, caller, contact_id, lock=True)
            if values.get("is_primary") and not contact.is_primary:
                await BusinessRepository(session).unset_primary(contact.customer_id, except_id=contact.id)
            changed = False
            for column, new in values.items():
                if getattr(contact, column) != new:
                    setattr(contact, column, new)
                    changed = True
            if changed:
                contact.updated_at = utcnow()
                await session.flush()
            return pb.UpdateContactResponse(contact=contact_to_proto(contact))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateContact", request, pb.UpdateContactResponse,
                                    update)

    async def DeleteContact(self, request: pb.DeleteContactRequest,
                            context: grpc.aio.ServicerContext) -> pb.DeleteContactResponse:
        caller = caller_of(context)
        require_staff(caller)
        contact_id = parse_int_id(request.contact_id.strip(), "contact_id")

        async def delete(session: AsyncSession) -> pb.DeleteContactResponse:
            contact = await self._contact(session, caller, contact_id, lock=True)
            await session.delete(contact)
            await session.flush()
            return pb.DeleteContactResponse(contact_id=str(contact_id))

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteContact", request, pb.DeleteContactResponse,
                                    delete)

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
        async with self.db.read() as session:
            await self._owned(session, caller, customer_id)
            rows = await BusinessRepository(session).contacts(customer_id, limit + 1, after)
        page = rows[:limit]
        token = encode_token({"p": page[-1].is_primary, "id": page[-1].id, "c": customer_id}) \
            if len(rows) > limit else ""
        return pb.ListContactsResponse(contacts=[contact_to_proto(c) for c in page], next_page_token=token)

    async def SearchContacts(self, request: pb.SearchContactsRequest,
                             context: grpc.aio.ServicerContext) -> pb.SearchContactsResponse:
        caller = caller_of(context)
        scope = owned_scope(caller)
        if len(request.query) > 100:
            raise InvalidArgument("must be at most 100 characters", field="query")
        limit = page_size(request.page_size)
        fingerprint = hashlib.sha256(f"{request.query}|{caller.role}|{caller.staff_id}".encode()).hexdigest()[:16]
        before = self._before(request.page_token, fingerprint)
        async with self.db.read() as session:
            rows = await BusinessRepository(session).search_contacts(
                request.query, and_(*scope) if scope else true(), limit + 1, before)
        page = rows[:limit]
        token = encode_token({"before": page[-1][0].id, "f": fingerprint}) if len(rows) > limit else ""
        return pb.SearchContactsResponse(contacts=[contact_to_proto(c, name) for c, name in page],
                                         next_page_token=token)
