"""Rows to crowdpack.customer.v1 business customer messages."""

from __future__ import annotations

from collections.abc import Sequence

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.common.validation import enum_of, to_timestamp
from services.customer.business.models import FollowUp, OwnershipTransfer, TransferApplication
from services.customer.business.repository import BusinessRow
from services.customer.classification.convert import tag_to_proto
from services.customer.classification.models import Tag


def business_to_proto(row: BusinessRow, *, contact_count: int = 0, tags: Sequence[Tag] = ()) -> pb.BusinessCustomer:
    c, p = row.customer, row.profile
    return pb.BusinessCustomer(
        customer_id=str(c.id), code=p.code, name=c.name, short_name=p.short_name,
        type=enum_of(pb.BusinessCustomerType, p.type), industry=p.industry,
        scale=p.scale, address=p.address, website=p.website,
        founded_date=p.founded_date.isoformat() if p.founded_date else "", credit_limit_fen=p.credit_limit_fen,
        payment_terms=p.payment_terms, payment_days=p.payment_days, source=p.source,
        owner_staff_id=p.owner_staff_id, status=enum_of(pb.BusinessCustomerStatus, p.status),
        annual_revenue_fen=p.annual_revenue_fen,
        cooperation_years=p.cooperation_years, grade=enum_of(pb.BusinessCustomerGrade, p.grade),
        last_follow_up_time=to_timestamp(p.last_follow_up_at),
        phone=c.phone or "", email=c.email or "", group_id=str(c.group_id or ""), contact_count=contact_count,
        tags=[tag_to_proto(t) for t in tags], created_by=p.created_by, create_time=to_timestamp(c.created_at),
        update_time=to_timestamp(c.updated_at))


def transfer_to_proto(t: OwnershipTransfer) -> pb.OwnershipTransfer:
    return pb.OwnershipTransfer(
        transfer_id=str(t.id), customer_id=str(t.customer_id), from_staff_id=t.from_staff_id,
        to_staff_id=t.to_staff_id, operator_id=t.operator_id, reason=t.reason,
        transfer_time=to_timestamp(t.created_at), requested_by=t.requested_by,
        transfer_application_id=str(t.transfer_application_id or ""))


def application_to_proto(a: TransferApplication) -> pb.TransferApplication:
    return pb.TransferApplication(
        transfer_application_id=str(a.id), customer_id=str(a.customer_id), from_staff_id=a.from_staff_id,
        to_staff_id=a.to_staff_id, requested_by=a.requested_by, reason=a.reason,
        state=enum_of(pb.TransferApplicationState, a.state),
        decided_by=a.decided_by, decision_note=a.decision_note, create_time=to_timestamp(a.created_at),
        decide_time=to_timestamp(a.decided_at), transfer_id=str(a.transfer_id or ""))


def follow_up_to_proto(f: FollowUp) -> pb.FollowUp:
    return pb.FollowUp(
        follow_up_id=str(f.id), customer_id=str(f.customer_id), staff_id=f.staff_id,
        follow_up_time=to_timestamp(f.followed_up_at), method=enum_of(pb.FollowUpMethod, f.method),
        contact_id=str(f.contact_id or ""),
        contact_name=f.contact_name, content=f.content, create_time=to_timestamp(f.created_at))
