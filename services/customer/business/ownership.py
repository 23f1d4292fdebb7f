"""Who owns a business customer, who may see it, and how it changes hands.

A salesperson sees and changes only the business customers they own; administrators
(super admin, mall admin) and internal services see every one. Ownership changes only by
a transfer: an administrator's own (one customer, or in bulk when someone leaves) applies at
once; a salesperson applies and an administrator approves (5.4: transfers need approval).
Every transfer is recorded: from, to, who asked, who decided (the operator), time and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from services.common.auth import Caller, Role
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.customer import timeline
from services.customer.business import events as business_events
from services.customer.business.models import (
    APPLICATION_REJECTED,
    KIND_BUSINESS,
    BusinessProfile,
    OwnershipTransfer,
)
from services.customer.business.repository import BusinessRepository, BusinessRow
from services.customer.models import Customer
from services.customer.organization.models import Staff
from services.customer.scope import visible_members

ADMINS = (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN)
# Staff who may own business customers.
OWNER_ROLES = (org_pb.STAFF_ROLE_SUPER_ADMIN, org_pb.STAFF_ROLE_MALL_ADMIN, org_pb.STAFF_ROLE_SALES)


def is_admin(caller: Caller) -> bool:
    return caller.role in ADMINS


def require_staff(caller: Caller) -> None:
    """Business customers are for staff: administrators and sales."""
    if caller.role not in (*ADMINS, Role.SALES):
        raise PermissionDenied("business customers are for administrators and sales staff")


def require_transfer_rights(caller: Caller) -> None:
    if not is_admin(caller):
        raise PermissionDenied("transferring customers needs an administrator "
                               "(a salesperson applies: CreateTransferApplication)")


def owned_scope(caller: Caller) -> list[ColumnElement[bool]]:
    """WHERE clauses (on BusinessProfile) limiting a list to the caller's business customers."""
    require_staff(caller)
    return [] if is_admin(caller) else [BusinessProfile.owner_staff_id == caller.staff_id]


def check_owner(caller: Caller, row: BusinessRow) -> None:
    """PERMISSION_DENIED unless the caller may see and change this customer."""
    require_staff(caller)
    if not is_admin(caller) and row.profile.owner_staff_id != caller.staff_id:
        raise PermissionDenied(f"customer {row.customer.id} is owned by another salesperson")


def visible_customers(caller: Caller) -> ColumnElement[bool]:
    """A WHERE clause on ``Customer`` (any kind) selecting the customers the caller may classify.

    Members as the member scope says (a mall admin: the members of their malls); business
    customers as ownership says (a salesperson: their own; administrators: all).
    """
    if caller.role in (Role.SYSTEM, Role.SUPER_ADMIN):
        return true()
    owned = exists(select(BusinessProfile.customer_id).where(
        BusinessProfile.customer_id == Customer.id, BusinessProfile.owner_staff_id == caller.staff_id))
    if caller.role == Role.MALL_ADMIN:
        return or_(Customer.kind == KIND_BUSINESS, and_(Customer.kind != KIND_BUSINESS, visible_members(caller)))
    if caller.role == Role.SALES:
        return and_(Customer.kind == KIND_BUSINESS, owned)
    raise PermissionDenied("groups and tags are for administrators and sales staff")


def staff_id_arg(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument("is required", field=field)
    if len(value) > 64:
        raise InvalidArgument("must be at most 64 characters", field=field)
    return value


async def check_new_owner(session: AsyncSession, staff_id: str, field: str) -> None:
    """The staff member exists, is enabled and may own business customers."""
    if not staff_id.isdigit() or len(staff_id) > 18:
        raise NotFound(f"no staff member {staff_id}", field=field)
    staff = await session.get(Staff, int(staff_id))
    if staff is None:
        raise NotFound(f"no staff member {staff_id}", field=field)
    if staff.disabled:
        raise FailedPrecondition(f"staff member {staff_id} is disabled", field=field)
    if staff.role not in OWNER_ROLES:
        raise FailedPrecondition(f"staff member {staff_id} cannot own business customers (not sales or admin)",
                                 field=field)


async def transfer(session: AsyncSession, row: BusinessRow, to_staff_id: str, operator_id: str, reason: str,
                   now: datetime, *, requested_by: str = "",
                   application_id: int | None = None) -> OwnershipTransfer:
    """Hands ``row`` to ``to_staff_id`` in the caller's transaction, records it and announces it.

    ``requested_by`` is who asked (an approved application's applicant); the operator by default.
    """
    record = OwnershipTransfer(customer_id=row.customer.id, from_staff_id=row.profile.owner_staff_id,
                               to_staff_id=to_staff_id, operator_id=operator_id, reason=reason, created_at=now,
                               requested_by=requested_by or operator_id, transfer_application_id=application_id)
    session.add(record)
    timeline.record(session, row.customer.id, "attribute_changed", operator_id, field="owner_staff_id",
                    **{"from": row.profile.owner_staff_id, "to": to_staff_id})
    row.profile.owner_staff_id = to_staff_id
    row.customer.updated_at = now
    await session.flush()
    business_events.owner_changed(session, record)
    return record


async def supersede_applications(session: AsyncSession, customer_ids: Sequence[int], operator_id: str,
                                 now: datetime, note: str = "superseded: the customer was transferred directly"
                                 ) -> None:
    """Closes the pending applications of customers an administrator just transferred directly (or deleted):
    they asked about an owner who no longer holds the customer. Each is rejected by the operator, saying why."""
    pending = await BusinessRepository(session).pending_applications(customer_ids)
    for application in pending:
        application.state = APPLICATION_REJECTED
        application.decided_by = operator_id
        application.decision_note = note
        application.decided_at = now
    if pending:
        await session.flush()
        for application in pending:
            business_events.application_decided(session, application)
