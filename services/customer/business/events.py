"""The business customer events the customer service publishes (through the outbox, in the caller's transaction)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.outbox import add_event
from services.common.validation import to_timestamp
from services.customer.business.models import APPLICATION_APPROVED, FollowUp, OwnershipTransfer, TransferApplication
from services.customer.models import OutboxEvent


def owner_changed(session: AsyncSession, t: OwnershipTransfer) -> None:
    add_event(session, OutboxEvent, events.BusinessOwnerChanged(
        customer_id=str(t.customer_id), from_staff_id=t.from_staff_id, to_staff_id=t.to_staff_id,
        operator_id=t.operator_id, requested_by=t.requested_by, transfer_id=str(t.id),
        transfer_application_id=str(t.transfer_application_id or ""), change_time=to_timestamp(t.created_at)))


def application_created(session: AsyncSession, a: TransferApplication) -> None:
    add_event(session, OutboxEvent, events.TransferApplicationCreated(
        transfer_application_id=str(a.id), customer_id=str(a.customer_id), from_staff_id=a.from_staff_id,
        to_staff_id=a.to_staff_id, requested_by=a.requested_by, reason=a.reason,
        create_time=to_timestamp(a.created_at)))


def application_decided(session: AsyncSession, a: TransferApplication) -> None:
    add_event(session, OutboxEvent, events.TransferApplicationDecided(
        transfer_application_id=str(a.id), customer_id=str(a.customer_id), requested_by=a.requested_by,
        approved=a.state == APPLICATION_APPROVED, decided_by=a.decided_by, decision_note=a.decision_note,
        decide_time=to_timestamp(a.decided_at)))


def followed_up(session: AsyncSession, f: FollowUp) -> None:
    add_event(session, OutboxEvent, events.BusinessFollowedUp(
        follow_up_id=str(f.id), customer_id=str(f.customer_id), staff_id=f.staff_id,
        follow_up_time=to_timestamp(f.followed_up_at), method=pb.FollowUpMethod.Name(f.method),
        contact_id=str(f.contact_id or "")))
