"""Who may see and change which members.

Super admins and internal services see everyone. A mall admin only ever sees members who
registered in their malls or interacted with them (consumed, redeemed, settled points or
red packets, or bound a card there). Sales work with business customers, not members.
A member sees only themself.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, or_, select, true

from services.common.auth import Caller, Role
from services.common.errors import PermissionDenied
from services.customer.models import Customer, CustomerInteraction


def visible_members(caller: Caller) -> ColumnElement[bool]:
    """A WHERE clause on ``Customer`` selecting the members ``caller`` may see."""
    if caller.role in (Role.SYSTEM, Role.SUPER_ADMIN):
        return true()
    if caller.role == Role.MALL_ADMIN:
        malls = [int(m) for m in caller.mall_ids if m.isdigit()]
        if not malls:
            return false()
        return or_(
            Customer.registration_mall_id.in_(malls),
            exists(select(CustomerInteraction.customer_id).where(
                CustomerInteraction.customer_id == Customer.id, CustomerInteraction.mall_id.in_(malls))),
        )
    if caller.role == Role.MEMBER and caller.staff_id.isdigit():
        return Customer.id == int(caller.staff_id)
    return false()


def require_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN):
        raise PermissionDenied(f"{what} needs an administrator")


def require_super_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN):
        raise PermissionDenied(f"{what} is for super admins only")
