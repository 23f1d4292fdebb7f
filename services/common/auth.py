"""Who is calling: the staff identity the gateway authenticated, carried as gRPC metadata.

The gateway authenticates a person and forwards ``x-crowdpack-staff-id``,
``x-crowdpack-role`` and ``x-crowdpack-mall-ids``. A call without them comes from an
internal service and acts as the system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import grpc

from services.common.errors import InvalidArgument


class Role(StrEnum):
    SYSTEM = "system"
    SUPER_ADMIN = "super_admin"
    MALL_ADMIN = "mall_admin"
    SALES = "sales"
    MEMBER = "member"


STAFF_ID = "x-crowdpack-staff-id"
ROLE = "x-crowdpack-role"
MALL_IDS = "x-crowdpack-mall-ids"


@dataclass(frozen=True)
class Caller:
    staff_id: str = "system"
    role: Role = Role.SYSTEM
    mall_ids: frozenset[str] = field(default_factory=frozenset)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((STAFF_ID, self.staff_id), (ROLE, self.role.value), (MALL_IDS, ",".join(sorted(self.mall_ids))))


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    meta = {k: v for k, v in (context.invocation_metadata() or ())}
    if ROLE not in meta:
        return Caller()
    try:
        role = Role(meta[ROLE])
    except ValueError:
        raise InvalidArgument(f"unknown role {meta[ROLE]!r}", field=ROLE) from None
    malls = frozenset(m for m in meta.get(MALL_IDS, "").split(",") if m)
    return Caller(staff_id=meta.get(STAFF_ID, ""), role=role, mall_ids=malls)
