"""Business customers: the archive, contacts and ownership; each operation in its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.common.auth import Caller
from services.common.errors import FailedPrecondition, NotFound
from services.common.idempotency import idempotent
from services.common.pagination import Page, keyset_page
from services.common.validation import aware, to_timestamp
from services.customer import timeline
from services.customer.business import changes, fields
from services.customer.business import events as business_events
from services.customer.business.contacts import contact_to_proto
from services.customer.business.convert import (
    application_to_proto,
    business_to_proto,
    follow_up_to_proto,
    transfer_to_proto,
)
from services.customer.business.models import (
    APPLICATION_APPROVED,
    APPLICATION_PENDING,
    APPLICATION_REJECTED,
    BusinessProfile,
    Contact,
    FollowUp,
    OwnershipTransfer,
    TransferApplication,
)
from services.customer.business.ownership import (
    check_new_owner,
    check_owner,
    is_admin,
    owned_scope,
    supersede_applications,
    transfer,
)
from services.customer.business.repository import BusinessRepository, BusinessRow, filter_clauses
from services.customer.classification import tagging
from services.customer.classification.models import Tag
from services.customer.contacts_held import held_error
from services.customer.feature import FeatureService
from services.customer.models import Customer


@dataclass(frozen=True)
class BusinessList:
    """A page of business customers with their contact counts and tags, the next page's token and the total."""

    rows: list[BusinessRow]
    contact_counts: dict[int, int]
    tags: dict[int, list[Tag]]
    next_page_token: str
    total: int


async def _owned(session: AsyncSession, caller: Caller, customer_id: int, *, lock: bool = False) -> BusinessRow:
    row = await BusinessRepository(session).get(customer_id, lock=lock)
    if row is None:
        raise NotFound(f"no business customer {customer_id}", field="customer_id")
    check_owner(caller, row)
    return row


async def _view(session: AsyncSession, row: BusinessRow) -> pb.BusinessCustomer:
    repo = BusinessRepository(session)
    customer_id = row.customer.id
    return business_to_proto(row, contact_count=(await repo.contact_counts([customer_id])).get(customer_id, 0),
                             tags=(await repo.tags_of([customer_id])).get(customer_id, []))


async def _check_refs(repo: BusinessRepository, values: dict[str, Any], customer_id: int | None,
                      prefix: str = "") -> None:
    for column, name in ((Customer.phone, "phone"), (Customer.email, "email")):
        value = values.get(name)
        if value:
            held = await repo.holder_by(column, value)
            if held is not None and held[0] != customer_id:
                raise held_error(name, name, held[0], held[1], prefix)
    group_id = values.get("group_id")
    if group_id is not None and not await repo.group_exists(group_id):
        raise NotFound(f"no group {group_id}", field=prefix + "group_id")


async def _contact(session: AsyncSession, caller: Caller, contact_id: int, *, lock: bool = False) -> Contact:
    contact = await BusinessRepository(session).contact(contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}", field="contact_id")
    # Locking the customer serialises changes to its contacts (the primary swap).
    await _owned(session, caller, contact.customer_id, lock=lock)
    return contact


class BusinessService(FeatureService):
    # --- the archive

    @idempotent("CreateBusinessCustomer")
    async def create(self, session: AsyncSession, request: pb.CreateBusinessCustomerRequest, caller: Caller,
                     values: dict[str, Any], owner: str) -> pb.CreateBusinessCustomerResponse:
        await _check_refs(BusinessRepository(session), values, None)
        if owner != caller.staff_id:
            await check_new_owner(session, owner, "owner_staff_id")
        row = await changes.create(session, values, owner, caller.staff_id, self.clock())
        return pb.CreateBusinessCustomerResponse(business_customer=await _view(session, row))

    async def get(self, caller: Caller, customer_id: int) -> pb.BusinessCustomer:
        async with self.db.read() as session:
            return await _view(session, await _owned(session, caller, customer_id))

    @idempotent("UpdateBusinessCustomer")
    async def update(self, session: AsyncSession, request: pb.UpdateBusinessCustomerRequest, caller: Caller,
                     customer_id: int, values: dict[str, Any], prefix: str) -> pb.UpdateBusinessCustomerResponse:
        row = await _owned(session, caller, customer_id, lock=True)
        await _check_refs(BusinessRepository(session), values, customer_id, prefix)
        await changes.change(session, row, values, caller.staff_id, self.clock())
        return pb.UpdateBusinessCustomerResponse(business_customer=await _view(session, row))

    @idempotent("DeleteBusinessCustomer")
    async def delete(self, session: AsyncSession, request: pb.DeleteBusinessCustomerRequest, caller: Caller,
                     customer_id: int) -> pb.DeleteBusinessCustomerResponse:
        row = await _owned(session, caller, customer_id, lock=True)
        now = self.clock()
        await supersede_applications(session, [customer_id], caller.staff_id, now,
                                     "superseded: the customer was deleted")
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

    async def list(self, caller: Caller, f: pb.BusinessCustomerFilter, *, order_by: int, ascending: bool,
                   limit: int, after: tuple[datetime, int] | None, fingerprint: str) -> BusinessList:
        """A page of the caller's business customers matching the (validated) filter, in the order asked."""
        where = [*owned_scope(caller), *filter_clauses(f)]
        async with self.db.read() as session:
            repo = BusinessRepository(session)
            page = await keyset_page(lambda n: repo.page(where=where, order_by=order_by, ascending=ascending,
                                                         limit=n, after=after), limit)
            ids = [row.customer.id for row, _ in page.items]
            counts, tags = await repo.contact_counts(ids), await repo.tags_of(ids)
            total = await repo.count(where)
        token = page.next_token(lambda last: {"f": fingerprint, "v": aware(last[1]).isoformat(),
                                              "id": last[0].customer.id})
        return BusinessList([row for row, _ in page.items], counts, tags, token, total)

    async def statistics_rows(self, caller: Caller, owner_staff_id: str | None) -> Sequence[Any]:
        """(status, grade, count, revenue, years) rows of the caller's business customers (of one owner if named)."""
        where = owned_scope(caller)
        if owner_staff_id:
            where.append(BusinessProfile.owner_staff_id == owner_staff_id)
        async with self.db.read() as session:
            return await BusinessRepository(session).statistics_rows(where)

    # --- ownership

    @idempotent("TransferBusinessCustomer")
    async def transfer(self, session: AsyncSession, request: pb.TransferBusinessCustomerRequest, caller: Caller,
                       customer_id: int, to_staff_id: str, reason: str) -> pb.TransferBusinessCustomerResponse:
        row = await _owned(session, caller, customer_id, lock=True)
        if row.profile.owner_staff_id == to_staff_id:
            raise FailedPrecondition(f"customer {customer_id} is already owned by {to_staff_id}", field="to_staff_id")
        await check_new_owner(session, to_staff_id, "to_staff_id")
        now = self.clock()
        record = await transfer(session, row, to_staff_id, caller.staff_id, reason, now)
        await supersede_applications(session, [customer_id], caller.staff_id, now)
        return pb.TransferBusinessCustomerResponse(business_customer=await _view(session, row),
                                                   transfer=transfer_to_proto(record))

    @idempotent("BulkTransferBusinessCustomers")
    async def transfer_many(self, session: AsyncSession, request: pb.BulkTransferBusinessCustomersRequest,
                            caller: Caller, from_staff_id: str, ids: Sequence[int], to_staff_id: str,
                            reason: str) -> pb.BulkTransferBusinessCustomersResponse:
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
        now = self.clock()
        records = [await transfer(session, row, to_staff_id, caller.staff_id, reason, now)
                   for row in rows if row.profile.owner_staff_id != to_staff_id]
        await supersede_applications(session, [r.customer_id for r in records], caller.staff_id, now)
        return pb.BulkTransferBusinessCustomersResponse(transfers=[transfer_to_proto(r) for r in records])

    # --- transfer applications (5.4: a salesperson's transfer needs an administrator's approval)

    @idempotent("CreateTransferApplication")
    async def apply_for_transfer(self, session: AsyncSession, request: pb.CreateTransferApplicationRequest,
                                 caller: Caller, customer_id: int, to_staff_id: str,
                                 reason: str) -> pb.CreateTransferApplicationResponse:
        row = await _owned(session, caller, customer_id, lock=True)
        if row.profile.owner_staff_id == to_staff_id:
            raise FailedPrecondition(f"customer {customer_id} is already owned by {to_staff_id}", field="to_staff_id")
        await check_new_owner(session, to_staff_id, "to_staff_id")
        repo = BusinessRepository(session)
        pending = await repo.pending_application(customer_id)
        if pending is not None:
            raise FailedPrecondition(f"customer {customer_id} already has a pending transfer application "
                                     f"({pending.id})", field="customer_id")
        application = await repo.add_application(TransferApplication(
            customer_id=customer_id, from_staff_id=row.profile.owner_staff_id, to_staff_id=to_staff_id,
            requested_by=caller.staff_id, reason=reason, state=APPLICATION_PENDING, decided_by="",
            decision_note="", created_at=self.clock()))
        business_events.application_created(session, application)
        return pb.CreateTransferApplicationResponse(transfer_application=application_to_proto(application))

    async def _pending(self, session: AsyncSession, application_id: int) -> TransferApplication:
        """The pending application, locked; its customer locked first (the order every transfer locks in)."""
        repo = BusinessRepository(session)
        found = await repo.application(application_id)
        if found is None:
            raise NotFound(f"no transfer application {application_id}", field="transfer_application_id")
        await repo.get(found.customer_id, lock=True)
        application = await repo.application(application_id, lock=True)
        assert application is not None
        if application.state != APPLICATION_PENDING:
            raise FailedPrecondition(f"transfer application {application_id} is already decided",
                                     field="transfer_application_id")
        return application

    def _decide(self, session: AsyncSession, application: TransferApplication, caller: Caller, state: int,
                note: str) -> None:
        application.state = state
        application.decided_by = caller.staff_id
        application.decision_note = note
        application.decided_at = self.clock()
        business_events.application_decided(session, application)

    @idempotent("ApproveTransferApplication")
    async def approve_transfer(self, session: AsyncSession, request: pb.ApproveTransferApplicationRequest,
                               caller: Caller, application_id: int,
                               note: str) -> pb.ApproveTransferApplicationResponse:
        application = await self._pending(session, application_id)
        row = await BusinessRepository(session).get(application.customer_id, lock=True)
        if row is None:
            raise FailedPrecondition(f"customer {application.customer_id} was deleted; reject the application",
                                     field="transfer_application_id")
        if row.profile.owner_staff_id != application.from_staff_id:
            raise FailedPrecondition(f"customer {row.customer.id} changed hands since the application; reject it",
                                     field="transfer_application_id")
        await check_new_owner(session, application.to_staff_id, "transfer_application_id")
        record = await transfer(session, row, application.to_staff_id, caller.staff_id, application.reason,
                                self.clock(), requested_by=application.requested_by, application_id=application.id)
        application.transfer_id = record.id
        self._decide(session, application, caller, APPLICATION_APPROVED, note)
        await session.flush()
        return pb.ApproveTransferApplicationResponse(transfer_application=application_to_proto(application),
                                                     transfer=transfer_to_proto(record))

    @idempotent("RejectTransferApplication")
    async def reject_transfer(self, session: AsyncSession, request: pb.RejectTransferApplicationRequest,
                              caller: Caller, application_id: int, note: str) -> pb.RejectTransferApplicationResponse:
        application = await self._pending(session, application_id)
        self._decide(session, application, caller, APPLICATION_REJECTED, note)
        await session.flush()
        return pb.RejectTransferApplicationResponse(transfer_application=application_to_proto(application))

    async def applications(self, caller: Caller, states: Sequence[int], customer_id: int | None, limit: int,
                           before: int | None) -> Page[TransferApplication]:
        """Newest first: administrators see all; a salesperson those they made or that name them."""
        where: list[ColumnElement[bool]] = []
        if not is_admin(caller):
            me = caller.staff_id
            where.append(or_(TransferApplication.requested_by == me, TransferApplication.from_staff_id == me,
                             TransferApplication.to_staff_id == me))
        if states:
            where.append(TransferApplication.state.in_(states))
        if customer_id is not None:
            where.append(TransferApplication.customer_id == customer_id)
        async with self.db.read() as session:
            repo = BusinessRepository(session)
            return await keyset_page(lambda n: repo.applications(where, n, before), limit)

    async def transfers(self, caller: Caller, customer_id: int, limit: int,
                        before: int | None) -> Page[OwnershipTransfer]:
        async with self.db.read() as session:
            await _owned(session, caller, customer_id)
            repo = BusinessRepository(session)
            return await keyset_page(lambda n: repo.transfers(customer_id, n, before), limit)

    # --- contacts

    @idempotent("CreateContact")
    async def create_contact(self, session: AsyncSession, request: pb.CreateContactRequest, caller: Caller,
                             customer_id: int, values: dict[str, Any]) -> pb.CreateContactResponse:
        await _owned(session, caller, customer_id, lock=True)
        repo = BusinessRepository(session)
        if values["is_primary"]:
            await repo.unset_primary(customer_id)
        now = self.clock()
        contact = await repo.add_contact(Contact(customer_id=customer_id, created_at=now, updated_at=now, **values))
        return pb.CreateContactResponse(contact=contact_to_proto(contact))

    async def contact(self, caller: Caller, contact_id: int) -> Contact:
        async with self.db.read() as session:
            return await _contact(session, caller, contact_id)

    @idempotent("UpdateContact")
    async def update_contact(self, session: AsyncSession, request: pb.UpdateContactRequest, caller: Caller,
                             contact_id: int, values: dict[str, Any]) -> pb.UpdateContactResponse:
        contact = await _contact(session, caller, contact_id, lock=True)
        if values.get("is_primary") and not contact.is_primary:
            await BusinessRepository(session).unset_primary(contact.customer_id, except_id=contact.id)
        changed = False
        for column, new in values.items():
            if getattr(contact, column) != new:
                setattr(contact, column, new)
                changed = True
        if changed:
            contact.updated_at = self.clock()
            await session.flush()
        return pb.UpdateContactResponse(contact=contact_to_proto(contact))

    @idempotent("DeleteContact")
    async def delete_contact(self, session: AsyncSession, request: pb.DeleteContactRequest, caller: Caller,
                             contact_id: int) -> pb.DeleteContactResponse:
        contact = await _contact(session, caller, contact_id, lock=True)
        await BusinessRepository(session).delete_contact(contact)
        return pb.DeleteContactResponse(contact_id=str(contact_id))

    async def contacts(self, caller: Caller, customer_id: int, limit: int,
                       after: tuple[bool, int] | None) -> Page[Contact]:
        async with self.db.read() as session:
            await _owned(session, caller, customer_id)
            repo = BusinessRepository(session)
            return await keyset_page(lambda n: repo.contacts(customer_id, n, after), limit)

    async def search_contacts(self, caller: Caller, query: str, limit: int,
                              before: int | None) -> Page[tuple[Contact, str]]:
        """Contacts of the caller's business customers matching ``query``, each with its customer's name."""
        scope = owned_scope(caller)
        async with self.db.read() as session:
            repo = BusinessRepository(session)
            return await keyset_page(lambda n: repo.search_contacts(
                query, and_(*scope) if scope else true(), n, before), limit)

    # --- follow-ups

    @idempotent("CreateFollowUp")
    async def create_follow_up(self, session: AsyncSession, request: pb.CreateFollowUpRequest, caller: Caller,
                               customer_id: int, when: datetime | None, method: int, contact_id: int | None,
                               content: str) -> pb.CreateFollowUpResponse:
        row = await _owned(session, caller, customer_id, lock=True)
        repo = BusinessRepository(session)
        contact_name = ""
        if contact_id is not None:
            contact = await repo.contact(contact_id)
            if contact is None or contact.customer_id != customer_id:
                raise NotFound(f"no contact {contact_id} of customer {customer_id}", field="contact_id")
            contact_name = contact.name
        now = self.clock()
        when = when or now
        follow_up = await repo.add_follow_up(FollowUp(
            customer_id=customer_id, staff_id=caller.staff_id, followed_up_at=when, method=method,
            contact_id=contact_id, contact_name=contact_name, content=content, created_at=now))
        last = row.profile.last_follow_up_at
        if last is None or aware(last) < when:
            row.profile.last_follow_up_at = when
            timeline.record(session, customer_id, "attribute_changed", caller.staff_id, field="last_follow_up_time",
                            **{"from": fields.timeline_value("last_follow_up_at", last),
                               "to": fields.timeline_value("last_follow_up_at", when)})
            await session.flush()
        business_events.followed_up(session, follow_up)
        return pb.CreateFollowUpResponse(follow_up=follow_up_to_proto(follow_up),
                                         business_customer=await _view(session, row))

    async def follow_ups(self, caller: Caller, customer_id: int, limit: int,
                         after: tuple[datetime, int] | None) -> Page[FollowUp]:
        async with self.db.read() as session:
            await _owned(session, caller, customer_id)
            repo = BusinessRepository(session)
            return await keyset_page(lambda n: repo.follow_ups(customer_id, n, after), limit)
