"""Who may see which member, and in which malls a caller may act: the rule both the customer service and the
ledger apply, each to its own data.

- Super admins and internal services (no identity: the system) see every member and act in every mall.
- A mall admin sees the members related to one of their malls: registered there, bound a card there,
  consumed there (an order), redeemed a voucher there, or had points or red packets settled there (a
  manual adjustment). They act only in their malls: an order, a recharge, a refund, an adjustment or
  a voucher names one of them, and an adjustment is only for a member they already see.
- Sales work with business customers: they see no member and no member's ledger.
- A member sees only themself, and changes nothing directly.

``member_scope`` turns a caller into one of these scopes; each service answers "is this member related to
these malls" from what it knows (the customer service from its interaction table, the ledger from its
orders, entries and redemptions and the registration and card malls the customer service announces).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.auth import Caller, Role
from services.common.errors import PermissionDenied

# What counts as a relation to a mall, and the name each service records it under.
RELATION_KINDS = ("register", "bind_card", "consume", "redeem_voucher", "settle_points", "settle_red_packet")


@dataclass(frozen=True)
class MemberScope:
    """``everyone``; else the members related to ``malls``; else ``member_id`` alone; else nobody."""

    everyone: bool = False
    malls: frozenset[str] = frozenset()
    member_id: str = ""

    @property
    def nobody(self) -> bool:
        return not (self.everyone or self.malls or self.member_id)


EVERYONE = MemberScope(everyone=True)
NOBODY = MemberScope()


def member_scope(caller: Caller) -> MemberScope:
    if caller.role in (Role.SYSTEM, Role.SUPER_ADMIN):
        return EVERYONE
    if caller.role == Role.MALL_ADMIN:
        return MemberScope(malls=frozenset(m for m in caller.mall_ids if m.isdigit()))
    if caller.role == Role.MEMBER and caller.staff_id.isdigit():
        return MemberScope(member_id=caller.staff_id)
    return NOBODY


def acts_everywhere(caller: Caller) -> bool:
    return caller.role in (Role.SYSTEM, Role.SUPER_ADMIN)


def require_member_staff(caller: Caller, what: str) -> None:
    """Changes to a member's ledger come from administrators or the system (sales and members are refused)."""
    if caller.role not in (Role.SYSTEM, Role.SUPER_ADMIN, Role.MALL_ADMIN):
        raise PermissionDenied(f"a {caller.role.value} may not {what}", field="role", error_reason="ROLE_NOT_ALLOWED")


def require_managed_mall(caller: Caller, mall_id: str, field: str = "mall_id") -> None:
    """A mall admin may only name one of their malls (and must name one); others act anywhere."""
    if acts_everywhere(caller):
        return
    if not mall_id:
        raise PermissionDenied(f"operator {caller.staff_id} must name one of their malls", field=field,
                               error_reason="MALL_NOT_MANAGED")
    if mall_id not in caller.mall_ids:
        raise PermissionDenied(f"operator {caller.staff_id} does not manage mall {mall_id}", field=field,
                               error_reason="MALL_NOT_MANAGED")
