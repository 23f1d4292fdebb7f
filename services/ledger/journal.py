"""Posting journal entries: the one path every balance change takes.

A ``Book`` is one transaction's view of the ledger. It reads what the postings need in a
few queries (the accounts, locked with ``SELECT ... FOR UPDATE`` on PostgreSQL; the members'
state; the points rules; the reason templates), then ``apply`` checks each request's
postings in memory, all or none per request:

- the account exists; a disabled member gets no points use and no member benefits;
- a reason template is live and offered for the asset;
- each balance, in posting order, stays between 0 and 9·10^15.

A refused request changes nothing, in memory or in the database. ``flush`` then writes what
every accepted request did with one statement per table: balances (compare-and-set), orders,
entries, points lots (a credit opens a lot, a debit takes from the oldest lots first, an expiry
closes exactly the lots that expired) and the events: one ``ledger.entry.posted`` per entry, except
that a batch posting's entries go out together in ``ledger.entries.posted`` events of up to 1,000.
So a batch of many requests costs about as many statements as one request: the group commit
(commit.py) decides a whole batch with a dozen statements, all in one synchronous transaction
(``Database.run_sync_write``). Bulk rows go in with driver-level executemany.

``Book`` is synchronous (a sync ``Session``); ``Journal`` is the one-request shorthand for
async code, running the book through ``AsyncSession.run_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.bulk import allocate_ids, insert_rows, update_rows
from services.common.chunks import IN_LIST, chunks
from services.common.errors import Aborted, FailedPrecondition, NotFound
from services.common.mapped import table_of
from services.common.outbox import add_events
from services.common.validation import MAX_MONEY
from services.ledger.journal_events import entry_events
from services.ledger.lots import move_lots
from services.ledger.models import (
    Account,
    JournalEntry,
    MemberState,
    Order,
    OutboxEvent,
    ReasonTemplate,
)
from services.ledger.places import Places
from services.ledger.postings import (
    ASSET_NAMES,
    NO_MEMBER_STATE,
    AccountKey,
    AccountState,
    MemberView,
    Needs,
    OrderDraft,
    Posted,
    Posting,
    is_benefit,
)
from services.ledger.rules import Rule, effective_rules

ACCOUNTS = table_of(Account)
ENTRIES = table_of(JournalEntry)
ORDERS = table_of(Order)
MEMBER_STATES = table_of(MemberState)
ENTRY_COLUMNS = ("id", "request_id", "line", "account_id", "kind", "amount", "balance_after", "reason_template_id",
                 "reason", "note", "voucher", "document_at", "mall_id", "store_id", "operator_id", "order_id",
                 "reversal_of_id", "created_at")

# The batch reads, built once (statement construction costs more than a small batch's rows).
ACCOUNTS_OF = (select(ACCOUNTS.c.id, ACCOUNTS.c.member_id, ACCOUNTS.c.asset, ACCOUNTS.c.balance, ACCOUNTS.c.debt,
                      ACCOUNTS.c.opened_at)
               .where(ACCOUNTS.c.member_id.in_(bindparam("members", expanding=True)))
               .order_by(ACCOUNTS.c.id).with_for_update())
MEMBER_STATES_OF = select(MEMBER_STATES.c.member_id, MEMBER_STATES.c.disabled, MEMBER_STATES.c.level).where(
    MEMBER_STATES.c.member_id.in_(bindparam("members", expanding=True)))


class Book:
    """One transaction's accounts, member states, rules and templates, and the entries it will write."""

    def __init__(self, session: Session, *, now: datetime) -> None:
        self.session = session
        self.now = now
        self.accounts: dict[AccountKey, AccountState] = {}
        self.members: dict[str, MemberView] = {}
        self.rules: dict[str, Rule] = {}
        self.templates: dict[int, tuple[int, str]] = {}  # id -> (asset, name), live ones
        self.places = Places()
        self.pending: list[Posted] = []
        self.orders: list[OrderDraft] = []
        self._lines: dict[str, int] = {}
        self._together: set[str] = set()  # request ids whose entries are announced together
        self._looked_up: set[AccountKey] = set()
        self._missing_templates: set[int] = set()

    # Reading

    def load(self, needs: Needs) -> None:
        """Reads (and on PostgreSQL locks) whatever ``needs`` names that this book has not read yet."""
        self._load_accounts(needs.accounts - self._looked_up)
        members = sorted(needs.members - self.members.keys())
        for chunk in chunks(members, IN_LIST):
            for r in self.session.execute(MEMBER_STATES_OF, {"members": chunk}):
                self.members[r.member_id] = MemberView(disabled=bool(r.disabled), level=r.level)
        for member in members:
            self.members.setdefault(member, NO_MEMBER_STATE)
        malls = needs.malls - self.rules.keys()
        if malls:
            self.rules.update(effective_rules(self.session, malls))
        templates = sorted(needs.templates - self.templates.keys() - self._missing_templates)
        for template_ids in chunks(templates, IN_LIST):
            rows = self.session.execute(
                select(ReasonTemplate.id, ReasonTemplate.asset, ReasonTemplate.name)
                .where(ReasonTemplate.id.in_(template_ids), ReasonTemplate.deleted_at.is_(None)))
            for r in rows:
                self.templates[r.id] = (r.asset, r.name)
        self._missing_templates.update(t for t in templates if t not in self.templates)
        self.places.load(self.session, needs.places)

    def _load_accounts(self, keys: set[AccountKey]) -> None:
        self._looked_up |= keys
        members = sorted({member for member, _ in keys})
        for chunk in chunks(members, IN_LIST):
            rows = self.session.execute(ACCOUNTS_OF, {"members": chunk})
            accounts, looked_up = self.accounts, self._looked_up
            for id_, member, asset, balance, debt, opened_at in rows:
                key = (member, asset)
                looked_up.add(key)
                if key not in accounts:
                    accounts[key] = AccountState(id=id_, member_id=member, asset=asset, balance=balance, debt=debt,
                                                 opened_at=opened_at)

    def account(self, member_id: str, asset: int, field: str = "member_id") -> AccountState:
        found = self.accounts.get((member_id, asset))
        if found is None:
            raise NotFound(f"member {member_id} has no {ASSET_NAMES[asset]} account", field=field)
        return found

    def member(self, member_id: str) -> MemberView:
        return self.members.get(member_id, NO_MEMBER_STATE)

    def check_places(self, postings: Iterable[Posting]) -> None:
        """The malls and stores the postings name are ones the ledger knows, and each store is its mall's."""
        for p in postings:
            if p.mall_id or p.store_id:
                self.places.check(p.mall_id, p.store_id, mall_field=p.at("mall_id"), store_field=p.at("store_id"))

    # Checking

    def apply(self, request_id: str, postings: Sequence[Posting], *, operator_id: str,
              together: bool = False) -> list[Posted]:
        """Checks and applies one request's postings in memory: all of them, or none and an error.

        ``together``: the entries are announced together (``ledger.entries.posted``), as a batch posting's are.
        """
        before: dict[AccountKey, tuple[int, int]] = {}
        accepted: list[Posted] = []
        line = self._lines.get(request_id, 0)
        try:
            for p in postings:
                key = (p.member_id, p.asset)
                acct = self.accounts.get(key)
                if acct is None:
                    raise NotFound(f"member {p.member_id} has no {ASSET_NAMES[p.asset]} account",
                                   field=p.at("member_id"))
                if is_benefit(p.asset, p.kind) and self.member(p.member_id).disabled:
                    raise FailedPrecondition(f"member {p.member_id} is disabled: points use and member benefits "
                                             "are refused", field=p.at("member_id"), error_reason="MEMBER_DISABLED")
                if p.reason_template_id is not None:
                    self._attach_reason(p)
                before.setdefault(key, (acct.balance, acct.debt))
                debt = acct.debt + p.debt_change
                if debt < 0:
                    raise RuntimeError(f"points debt of account {acct.id} would go below zero")
                after = acct.balance + p.amount
                if after < 0:
                    raise FailedPrecondition(f"{ASSET_NAMES[p.asset]} balance {acct.balance} of member "
                                             f"{p.member_id} is less than {-p.amount}", field=p.at("amount"),
                                             error_reason="INSUFFICIENT_BALANCE",
                                             metadata={"asset": ASSET_NAMES[p.asset]})
                if after > MAX_MONEY:
                    raise FailedPrecondition(f"the {ASSET_NAMES[p.asset]} balance of member {p.member_id} would "
                                             f"exceed {MAX_MONEY}", field=p.at("amount"))
                acct.balance, acct.debt = after, debt
                accepted.append(Posted(
                    request_id=request_id, line=line + len(accepted), account_id=acct.id, member_id=p.member_id,
                    asset=p.asset, posting=p, balance_after=after, debt_after=debt, operator_id=operator_id,
                    created_at=self.now))
        except BaseException:
            for key, (balance, debt) in before.items():
                self.accounts[key].balance, self.accounts[key].debt = balance, debt
            raise
        self._lines[request_id] = line + len(accepted)
        self.pending.extend(accepted)
        if together:
            self._together.add(request_id)
        return accepted

    def _attach_reason(self, p: Posting) -> None:
        assert p.reason_template_id is not None
        template = self.templates.get(p.reason_template_id)
        if template is None:
            raise NotFound(f"no reason template {p.reason_template_id}", field=p.at("reason_template_id"))
        asset, name = template
        if asset not in (pb.ASSET_UNSPECIFIED, p.asset):
            raise FailedPrecondition(f"reason template {p.reason_template_id} is for {ASSET_NAMES[asset]}",
                                     field=p.at("reason_template_id"))
        p.reason = name

    def add_order(self, draft: OrderDraft) -> None:
        self.orders.append(draft)

    # Writing

    def flush(self) -> list[Posted]:
        """Writes every accepted change; returns the entries, ids set, in the order they were applied."""
        pending, orders = self.pending, self.orders
        self.pending, self.orders = [], []
        self.session.flush()  # what the ORM holds goes first: the rows below may refer to it
        ids = allocate_ids(self.session, {ORDERS: len(orders), ENTRIES: len(pending)})
        for draft, order_id in zip(orders, ids[ORDERS], strict=True):
            draft.id = order_id
        for entry, entry_id in zip(pending, ids[ENTRIES], strict=True):
            entry.id = entry_id
        conn = self.session.connection()
        if orders:
            columns = ("id", *orders[0].values)
            insert_rows(conn, ORDERS, columns, [(d.id, *(d.values[c] for c in columns[1:])) for d in orders])
        self._store_balances()
        if pending:
            self._insert_entries(pending)
            move_lots(self.session, pending, self.rules, self.now)
        messages = entry_events(pending, self._together, self.now)
        messages += [draft.event(draft) for draft in orders if draft.event is not None]
        add_events(conn, OutboxEvent, messages)
        return pending

    def _store_balances(self) -> None:
        changed = [a for a in self.accounts.values() if a.changed]
        if not changed:
            return
        matched = update_rows(self.session.connection(), ACCOUNTS, ("balance", "debt"), ("id", "balance", "debt"),
                              [(a.balance, a.debt, a.id, a.stored_balance, a.stored_debt) for a in changed])
        if matched != len(changed):
            # The rows are locked, so only a writer outside the ledger could have changed them.
            raise Aborted("an account changed while it was being posted to; retry with the same request_id")
        for a in changed:
            a.stored_balance, a.stored_debt = a.balance, a.debt

    def _insert_entries(self, pending: list[Posted]) -> None:
        rows = []
        now = self.now
        for e in pending:
            p = e.posting
            if p.order is not None:
                p.order_id = p.order.id
            rows.append((e.id, e.request_id, e.line, e.account_id, p.kind, p.amount, e.balance_after,
                         p.reason_template_id, p.reason, p.note, p.voucher, p.document_at, p.mall_id, p.store_id,
                         e.operator_id, p.order_id, p.reversal_of_id, now))
        insert_rows(self.session.connection(), ENTRIES, ENTRY_COLUMNS, rows)

class Journal:
    """One request's postings: read, check, write (``Book`` for a single request, from async code)."""

    def __init__(self, session: AsyncSession, *, now: datetime, operator_id: str) -> None:
        self.session = session
        self.book = Book(session.sync_session, now=now)
        self.operator_id = operator_id

    async def lock(self, keys: Iterable[AccountKey]) -> dict[AccountKey, AccountState]:
        """The accounts of ``keys`` that exist, locked until the transaction ends."""
        keys = set(keys)
        await self.session.run_sync(lambda _s: self.book.load(Needs(accounts=keys)))
        return {key: self.book.accounts[key] for key in keys if key in self.book.accounts}

    async def account(self, member_id: str, asset: int, field: str = "member_id") -> AccountState:
        await self.lock([(member_id, asset)])
        return self.book.account(member_id, asset, field)

    async def post(self, request_id: str, postings: Sequence[Posting]) -> list[Posted]:
        def post(_session: Session) -> list[Posted]:
            self.book.load(Needs.of(postings))
            self.book.apply(request_id, postings, operator_id=self.operator_id)
            return self.book.flush()

        return await self.session.run_sync(post)


