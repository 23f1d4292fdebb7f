"""Statements: an account's entries, newest first, filtered by kind, time range and mall (AIP-158 paging)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import InvalidArgument, NotFound
from services.common.pagination import decode_token, keyset_page, page_size
from services.common.validation import known_enum, parse_int_id
from services.ledger.convert import entry_to_proto
from services.ledger.inputs import asset, id_text, member_id, optional_time
from services.ledger.models import Account, JournalEntry


@dataclass(frozen=True)
class EntryFilter:
    kinds: tuple[int, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    mall_id: str = ""

    def fingerprint(self, account_id: int) -> str:
        """Ties a page token to the list it came from."""
        key = [account_id, self.kinds, self.start and self.start.isoformat(), self.end and self.end.isoformat(),
               self.mall_id]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def parse_filter(request: pb.ListEntriesRequest) -> EntryFilter:
    kinds = tuple(sorted({known_enum(pb.EntryKind, k, f"kinds[{i}]", allow_unspecified=False)
                          for i, k in enumerate(request.kinds)}))
    start, end = optional_time(request, "start_time"), optional_time(request, "end_time")
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")
    return EntryFilter(kinds=kinds, start=start, end=end, mall_id=id_text(request.mall_id, "mall_id"))


class EntryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def account(self, request: pb.ListEntriesRequest) -> Account:
        """The account a statement is for: by id, or by member and asset."""
        if request.account_id:
            account_id = parse_int_id(request.account_id, "account_id")
            account = await self.session.get(Account, account_id)
            if account is None:
                raise NotFound(f"no account {account_id}", field="account_id")
            return account
        member = member_id(request.member_id)
        which = asset(request.asset)
        account = await self.session.scalar(select(Account).where(Account.member_id == member, Account.asset == which))
        if account is None:
            raise NotFound(f"member {member} has no {pb.Asset.Name(which)} account", field="member_id")
        return account

    async def page(self, account_id: int, filt: EntryFilter, limit: int,
                   before_id: int | None) -> Sequence[JournalEntry]:
        query = select(JournalEntry).where(JournalEntry.account_id == account_id)
        if filt.kinds:
            query = query.where(JournalEntry.kind.in_(filt.kinds))
        if filt.start is not None:
            query = query.where(JournalEntry.created_at >= filt.start)
        if filt.end is not None:
            query = query.where(JournalEntry.created_at < filt.end)
        if filt.mall_id:
            query = query.where(JournalEntry.mall_id == filt.mall_id)
        if before_id is not None:
            query = query.where(JournalEntry.id < before_id)
        return (await self.session.scalars(query.order_by(JournalEntry.id.desc()).limit(limit))).all()

    async def of_request(self, request_id: str) -> list[pb.Entry]:
        """The entries one request posted, in line order."""
        rows = (await self.session.execute(
            select(JournalEntry, Account.member_id, Account.asset).join(Account, Account.id == JournalEntry.account_id)
            .where(JournalEntry.request_id == request_id).order_by(JournalEntry.line))).all()
        return [entry_to_proto(entry, member, which) for entry, member, which in rows]


async def list_entries(session: AsyncSession, request: pb.ListEntriesRequest,
                       may_see: Callable[[str], Awaitable[None]]) -> pb.ListEntriesResponse:
    """A page of an account's statement; ``may_see`` refuses a member outside the caller's scope."""
    limit = page_size(request.page_size)
    filt = parse_filter(request)
    repo = EntryRepository(session)
    account = await repo.account(request)
    await may_see(account.member_id)
    fingerprint = filt.fingerprint(account.id)
    cursor = decode_token(request.page_token)
    before = None
    if cursor is not None:
        before = cursor.get("before")
        if not isinstance(before, int) or cursor.get("list") != fingerprint:
            raise InvalidArgument("is not a token this list returned (with these filters)", field="page_token")
    page = await keyset_page(lambda n: repo.page(account.id, filt, n, before), limit)
    return pb.ListEntriesResponse(
        entries=[entry_to_proto(e, account.member_id, account.asset) for e in page.items],
        next_page_token=page.next_token(lambda e: {"before": e.id, "list": fingerprint}))
