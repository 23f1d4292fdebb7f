"""Queries of the member centre."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_pb2
from services.common.auth import Caller
from services.customer.levels.models import Level
from services.customer.models import Customer
from services.customer.scope import visible_members

MEMBERS = Customer.kind == member_pb2.CUSTOMER_KIND_MEMBER


class MemberCentreRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_channel(self, column: Any, user_id: str) -> Customer | None:
        return (await self.session.scalars(select(Customer).where(MEMBERS, column == user_id).limit(1))).first()

    async def by_phone(self, phone: str) -> Customer | None:
        return (await self.session.scalars(select(Customer).where(MEMBERS, Customer.phone == phone))).first()

    async def member(self, member_id: int) -> Customer | None:
        member = await self.session.get(Customer, member_id)
        return member if member is not None and member.kind == member_pb2.CUSTOMER_KIND_MEMBER else None

    async def visible(self, member_id: int, caller: Caller) -> bool:
        found = await self.session.scalar(select(Customer.id).where(Customer.id == member_id,
                                                                    visible_members(caller)))
        return found is not None

    async def level_name(self, number: int) -> str:
        return (await self.session.scalar(select(Level.name).where(Level.number == number))) or ""
