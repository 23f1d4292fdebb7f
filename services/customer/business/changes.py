"""A business customer's archive created or changed, in the caller's transaction: what CreateBusinessCustomer
and UpdateBusinessCustomer do, and what a business customer import does per row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.common.validation import aware
from services.customer import timeline
from services.customer.business import fields
from services.customer.business.codes import next_code
from services.customer.business.grade import GRADE_INPUTS, compute_grade
from services.customer.business.models import KIND_BUSINESS, BusinessProfile
from services.customer.business.repository import BusinessRepository, BusinessRow
from services.customer.models import Customer

# Column names as the API (and so the timeline) calls them.
API_NAMES = {"last_follow_up_at": "last_follow_up_time"}


def _comparable(value: Any) -> Any:
    return aware(value) if isinstance(value, datetime) else value


async def create(session: AsyncSession, values: dict[str, Any], owner: str, actor_id: str, now: datetime,
                 **detail: Any) -> BusinessRow:
    """A new business customer with a generated code and computed grade; ``values`` are validated columns
    (``fields.archive_values``); the timeline's "created" entry carries ``detail`` too."""
    customer_values = {k: v for k, v in values.items() if k in fields.CUSTOMER_COLUMNS}
    profile_values = {k: v for k, v in values.items() if k in fields.PROFILE_COLUMNS}
    if not profile_values.get("status"):
        profile_values["status"] = pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL
    grade = compute_grade(profile_values["status"], profile_values.get("annual_revenue_fen", 0),
                          profile_values.get("cooperation_years", 0))
    code = await next_code(session, now)
    row = await BusinessRepository(session).add(
        Customer(kind=KIND_BUSINESS, registered_at=now, created_at=now, updated_at=now, **customer_values),
        BusinessProfile(code=code, owner_staff_id=owner, created_by=actor_id, grade=grade, **profile_values))
    timeline.record(session, row.customer.id, "created", actor_id, customer_kind="business", code=code,
                    owner_staff_id=owner, grade=fields.timeline_value("grade", grade), **detail)
    return row


async def change(session: AsyncSession, row: BusinessRow, values: dict[str, Any], actor_id: str,
                 now: datetime) -> dict[str, tuple[Any, Any]]:
    """Sets the columns that differ, recomputes the grade when its inputs changed, records each change on the
    timeline; returns column -> (old, new)."""
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
        row.customer.updated_at = now
        await session.flush()
        for column, (old, new) in changed.items():
            timeline.record(session, row.customer.id, "attribute_changed", actor_id,
                            field=API_NAMES.get(column, column),
                            **{"from": fields.timeline_value(column, old), "to": fields.timeline_value(column, new)})
    return changed
