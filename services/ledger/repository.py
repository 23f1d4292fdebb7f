"""Queries over accounts. Servicers and consumers reach the database only through here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ledger.models import Account


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_member(self, member_id: str, asset: int = 0) -> Sequence[Account]:
        query = select(Account).where(Account.member_id == member_id).order_by(Account.asset)
        if asset:
            query = query.where(Account.asset == asset)
        return (await self.session.scalars(query)).all()

    async def add(self, account: Account) -> Account:
        self.session.add(account)
        await self.session.flush()
        return account
