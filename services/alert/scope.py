"""Who may act on which mall's rules, alerts and digests: administrators, a mall admin in their own malls."""

from __future__ import annotations

from services.common.auth import Caller, Role
from services.common.errors import PermissionDenied
from services.common.validation import parse_int_id


def require_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN):
        raise PermissionDenied(f"{what} needs an administrator")


def require_super_admin(caller: Caller, what: str) -> None:
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN):
        raise PermissionDenied(f"{what} is for super admins only")


def require_mall(caller: Caller, mall_id: str, what: str) -> None:
    """Administrators only; a mall admin only in their own malls."""
    require_admin(caller, what)
    if caller.role == Role.MALL_ADMIN and mall_id not in caller.mall_ids:
        raise PermissionDenied(f"{what}: mall {mall_id} is not one of yours")


def visible_malls(caller: Caller, mall_id: str) -> frozenset[str] | None:
    """The malls a list may show the caller (None: every mall)."""
    require_admin(caller, "listing alerts")
    if mall_id:
        parse_int_id(mall_id, "filter.mall_id")
        require_mall(caller, mall_id, "listing alerts")
        return frozenset([mall_id])
    return caller.mall_ids if caller.role == Role.MALL_ADMIN else None
