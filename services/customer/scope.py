"""Who may see and change which members: services/common/scope.py's rule over the customer service's data.

A mall admin's members are those who registered in their malls or interacted with them (the
``customer_interaction`` table: consumed, redeemed, settled points or red packets, or bound a card
there). Sales work with business customers, not members. A member sees only themself.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, or_, select, true

from services.common.auth import Caller, Role
from services.common.errors import PermissionDenied
from services.common.scope import member_scope
from services.customer.models import Customer, CustomerInteraction

# The clause of a caller who sees every member: one object, so a query built once for it can be told apart.
EVERYONE: ColumnElement[bool] = true()


def visible_members(caller: Caller) -> ColumnElement[bool]:
    """A WHERE clause on ``Customer`` selecting the members ``caller`` may see (``EVERYONE`` itself if all)."""
    scope = member_scope(caller)
    if scope.everyone:
        return EVERYONE
    if scope.malls:
        malls = sorted(int(m) for m in scope.malls)
        return or_(
            Customer.registration_mall_id.in_(malls),
            exists(select(CustomerInteraction.customer_id).where(
                CustomerInteraction.customer_id == Customer.id, CustomerInteraction.mall_id.in_(malls))),
        )
    if scope.member_id:
        return Customer.id == int(scope.member_id)
    return false()


def require_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN):
        raise PermissionDenied(f"{what} needs an administrator")


def require_super_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN):
        raise PermissionDenied(f"{what} is for super admins only", error_reason="SUPER_ADMIN_ONLY")
