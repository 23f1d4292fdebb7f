"""The journal's values: a checked posting, the account it moves, the entry it becomes, and what a request reads.

Plain data: ``Book`` (journal.py) reads, checks and writes with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from crowdpack.ledger.v1 import ledger_service_pb2 as pb

AccountKey = tuple[str, int]
ASSET_NAMES = {v: pb.Asset.Name(v) for v in pb.Asset.values()}
KIND_NAMES = {v: pb.EntryKind.Name(v) for v in pb.EntryKind.values()}


def is_benefit(asset: int, kind: int) -> bool:
    """Points use (spending or earning points) and red packets: refused to disabled members."""
    if asset == pb.ASSET_POINTS:
        return kind in (pb.ENTRY_KIND_SPEND, pb.ENTRY_KIND_EARN)
    return asset == pb.ASSET_RED_PACKET and kind == pb.ENTRY_KIND_SPEND


@dataclass
class OrderDraft:
    """An order row to insert with the entries; ``id`` is known after the flush, and then its event."""

    values: dict[str, Any]
    event: Callable[[OrderDraft], Message] | None = None
    id: int | None = None


@dataclass
class Posting:
    """One checked change. ``amount`` is signed: positive credits, negative debits."""

    member_id: str
    asset: int
    kind: int
    amount: int
    reason_template_id: int | None = None
    reason: str = ""
    note: str = ""
    voucher: str = ""
    document_at: datetime | None = None
    mall_id: str = ""
    store_id: str = ""
    order_id: int | None = None
    # An order written in the same flush: its id becomes order_id.
    order: OrderDraft | None = None
    reversal_of_id: int | None = None
    # POINTS only: how the account's points debt moves with this entry (a refund adds what it
    # could not take back; an earning's repayment takes it off).
    debt_change: int = 0
    # EXPIRE only: the lots it closes, lot id -> what was left of it.
    expired_lots: dict[int, int] | None = None
    # Where the posting sits in the request, e.g. "postings[3]" ("" for the request itself) ...
    field: str = "posting"
    # ... and what the request calls the amount.
    amount_field: str = "amount"

    def at(self, name: str) -> str:
        """The request field that holds ``name`` of this posting, for error messages."""
        if name == "amount":
            name = self.amount_field
        return f"{self.field}.{name}" if self.field else name


@dataclass
class AccountState:
    """An account locked by this transaction; ``balance`` and ``debt`` move as postings apply."""

    id: int
    member_id: str
    asset: int
    balance: int
    debt: int
    opened_at: datetime
    stored_balance: int = 0
    stored_debt: int = 0

    def __post_init__(self) -> None:
        self.stored_balance, self.stored_debt = self.balance, self.debt

    @property
    def changed(self) -> bool:
        return self.balance != self.stored_balance or self.debt != self.stored_debt


@dataclass(frozen=True)
class MemberView:
    disabled: bool = False
    level: int = 0


NO_MEMBER_STATE = MemberView()  # a member the ledger has heard nothing about: enabled, base level


@dataclass
class Posted:
    """An entry: accepted by ``apply``, written (with its id) by ``flush``."""

    request_id: str
    line: int
    account_id: int
    member_id: str
    asset: int
    posting: Posting
    balance_after: int
    debt_after: int
    operator_id: str
    created_at: datetime
    id: int = 0


@dataclass
class Needs:
    """What a request reads before it can be checked."""

    accounts: set[AccountKey] = field(default_factory=set)
    members: set[str] = field(default_factory=set)
    malls: set[str] = field(default_factory=set)
    templates: set[int] = field(default_factory=set)
    # (mall id, store id) pairs a request names, to check against the malls and stores the ledger knows.
    places: set[tuple[str, str]] = field(default_factory=set)

    def add(self, other: Needs) -> None:
        self.accounts |= other.accounts
        self.members |= other.members
        self.malls |= other.malls
        self.templates |= other.templates
        self.places |= other.places

    @classmethod
    def of(cls, postings: Iterable[Posting]) -> Needs:
        needs = cls()
        for p in postings:
            needs.accounts.add((p.member_id, p.asset))
            if is_benefit(p.asset, p.kind):
                needs.members.add(p.member_id)
            if p.asset == pb.ASSET_POINTS and p.amount > 0:
                needs.malls.add(p.mall_id)
            if p.reason_template_id is not None:
                needs.templates.add(p.reason_template_id)
            if p.mall_id or p.store_id:
                needs.places.add((p.mall_id, p.store_id))
        return needs
