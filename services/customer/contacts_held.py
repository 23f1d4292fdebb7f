"""The error a new customer meets when another customer holds their phone, email or card number: one rule for
members and business customers.

A deleted customer keeps its data (document 000), so its phone or email stays taken until a super admin
releases it (``MemberService.ReleaseDeletedContacts``, docs/deleted-customers.md): the error says so, and how.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import AlreadyExists, DomainError, FailedPrecondition
from services.customer.models import Customer

RELEASABLE = ("phone", "email")


async def holder_of(session: AsyncSession, column: Any, value: str) -> tuple[int, bool] | None:
    """The customer (of either kind) holding ``value`` in ``column`` (a ``Customer`` column), and whether they are
    deleted; None when nobody does."""
    row = (await session.execute(select(Customer.id, Customer.deleted_at).where(column == value))).first()
    return None if row is None else (row[0], row[1] is not None)


def held_error(what: str, field: str, owner: int, deleted: bool, prefix: str = "") -> DomainError:
    """``field`` (``what`` in words) is held by customer ``owner``: FAILED_PRECONDITION naming a deleted holder and
    how to free the value, else ALREADY_EXISTS."""
    if deleted and field in RELEASABLE:
        return FailedPrecondition(
            f"this {what} belongs to deleted customer {owner}, whose data is kept; a super admin can "
            f"free it with ReleaseDeletedContacts (POST /v1/members/{owner}:releaseContacts)",
            field=prefix + field, error_reason=f"{field.upper()}_HELD_BY_DELETED_CUSTOMER",
            metadata={"customer_id": str(owner)})
    return AlreadyExists(f"a customer with this {what} exists", field=prefix + field,
                         error_reason=f"{field.upper()}_TAKEN")
