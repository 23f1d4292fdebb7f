"""The ledger service's tables.

Balances live on ``account`` (never below zero, a CHECK constraint as the last line of
defence); every change to one is an immutable ``journal_entry``. Points are also kept in
``points_lot`` rows, one per credit, consumed oldest first, so expiry knows exactly which
points are left. Orders and their refunds, points rules, reason templates and the members'
state as the customer service announces it complete the picture.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.consumer import ProcessedMessageMixin
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin

ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Account(Base):
    """One asset of one member. ``asset`` holds a crowdpack.ledger.v1.Asset value."""

    __tablename__ = "account"
    __table_args__ = (
        UniqueConstraint("member_id", "asset", name="uq_account_member_asset"),
        CheckConstraint("balance >= 0", name="ck_account_balance_not_negative"),
        CheckConstraint("debt >= 0", name="ck_account_debt_not_negative"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(32), index=True)
    asset: Mapped[int] = mapped_column(SmallInteger)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # POINTS only: points a refund took back after they were spent; later earnings pay it first.
    debt: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return (f"Account(id={self.id}, member_id={self.member_id!r}, asset={self.asset}, balance={self.balance}, "
                f"debt={self.debt})")


class JournalEntry(Base):
    """An immutable change to one account; never updated, never deleted."""

    __tablename__ = "journal_entry"
    __table_args__ = (
        UniqueConstraint("request_id", "line", name="uq_journal_entry_request_line"),
        CheckConstraint("amount <> 0", name="ck_journal_entry_amount_not_zero"),
        CheckConstraint("balance_after >= 0", name="ck_journal_entry_balance_after_not_negative"),
        Index("ix_journal_entry_account_id_id", "account_id", "id"),
        Index("uq_journal_entry_reversal_of_id", "reversal_of_id", unique=True,
              sqlite_where=text("reversal_of_id IS NOT NULL"), postgresql_where=text("reversal_of_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128))
    line: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    kind: Mapped[int] = mapped_column(SmallInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason_template_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    voucher: Mapped[str] = mapped_column(String(500), default="")
    document_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    mall_id: Mapped[str] = mapped_column(String(32), default="")
    store_id: Mapped[str] = mapped_column(String(32), default="")
    operator_id: Mapped[str] = mapped_column(String(64), default="")
    order_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    # A reversal names the entry it reverses; unique, so an entry is reversed at most once.
    reversal_of_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return (f"JournalEntry(id={self.id}, account_id={self.account_id}, kind={self.kind}, amount={self.amount}, "
                f"balance_after={self.balance_after})")


class PointsLot(Base):
    """Points credited together, spent oldest first; what is left of them expires at ``expires_at``."""

    __tablename__ = "points_lot"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="ck_points_lot_remaining_in_range"),
        Index("ix_points_lot_open", "account_id", "id", sqlite_where=text("remaining > 0"),
              postgresql_where=text("remaining > 0")),
        Index("ix_points_lot_due", "expires_at", sqlite_where=text("remaining > 0 AND expires_at IS NOT NULL"),
              postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"PointsLot(id={self.id}, account_id={self.account_id}, remaining={self.remaining}/{self.amount})"


class MemberState(Base):
    """What the customer service announced about a member: level and whether benefits are allowed."""

    __tablename__ = "member_state"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    status_changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    level_changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"MemberState({self.member_id!r}, level={self.level}, disabled={self.disabled})"


class MallState(Base):
    """A mall as the customer service announced it (customer.mall.changed): the ids the ledger accepts."""

    __tablename__ = "mall_state"

    mall_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"MallState({self.mall_id!r}, name={self.name!r}, deleted={self.deleted})"


class StoreState(Base):
    """A store as the customer service announced it (customer.store.changed); a store never changes mall."""

    __tablename__ = "store_state"

    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mall_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(50), default="")
    business_format: Mapped[str] = mapped_column(String(50), default="")
    brand: Mapped[str] = mapped_column(String(100), default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"StoreState({self.store_id!r}, mall_id={self.mall_id!r}, name={self.name!r})"


class MemberMall(Base):
    """A mall a member is related to by the customer service's events: registered or bound a card there.

    With the ledger's own orders, voucher redemptions and manual settlements it decides which
    members a mall admin sees (services/ledger/scope.py).
    """

    __tablename__ = "member_mall"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mall_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # "register" or "bind_card": the first relation seen.
    kind: Mapped[str] = mapped_column(String(30))

    def __repr__(self) -> str:
        return f"MemberMall({self.member_id!r}, {self.mall_id!r}, {self.kind!r})"


class ReasonTemplate(Base):
    """A reason the adjustment dialog offers. Deleting hides it; entries keep their reason text."""

    __tablename__ = "reason_template"
    __table_args__ = (
        Index("uq_reason_template_live_name", "asset", "name", unique=True,
              sqlite_where=text("deleted_at IS NULL"), postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    asset: Mapped[int] = mapped_column(SmallInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    operator_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"ReasonTemplate(id={self.id}, asset={self.asset}, name={self.name!r})"


class PointsRule(Base):
    """How a mall's orders earn points; ``mall_id`` "" is the default for malls without one."""

    __tablename__ = "points_rule"

    mall_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    points_per_yuan: Mapped[int] = mapped_column(Integer)
    # {"<level>": permille}
    level_multipliers: Mapped[dict[str, Any]] = mapped_column(JSON)
    excluded_store_ids: Mapped[list[str]] = mapped_column(JSON)
    expiry_days: Mapped[int] = mapped_column(Integer, default=0)
    operator_id: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"PointsRule(mall_id={self.mall_id!r}, points_per_yuan={self.points_per_yuan})"


class Order(Base):
    """A member's order, recorded once per (channel, external order number)."""

    __tablename__ = "order_record"
    __table_args__ = (
        UniqueConstraint("channel", "external_order_no", name="uq_order_record_channel_external_no"),
        CheckConstraint("amount > 0 AND paid_amount >= 0 AND paid_amount <= amount",
                        name="ck_order_record_amounts"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="ck_order_record_refunded"),
        CheckConstraint("points_reversed >= 0 AND points_reversed <= points_earned",
                        name="ck_order_record_points_reversed"),
        Index("ix_order_record_member_occurred", "member_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(32))
    mall_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32), default="")
    channel: Mapped[int] = mapped_column(SmallInteger)
    external_order_no: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The buyer as the order names them ("" when not given).
    buyer_real_name: Mapped[str] = mapped_column(String(100), default="")
    buyer_phone: Mapped[str] = mapped_column(String(11), default="")

    def __repr__(self) -> str:
        return (f"Order(id={self.id}, member_id={self.member_id!r}, amount={self.amount}, "
                f"refunded={self.refunded_amount})")


class OrderRefund(Base):
    __tablename__ = "order_refund"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order_record.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    points_reversed: Mapped[int] = mapped_column(BigInteger)
    points_debt: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"OrderRefund(id={self.id}, order_id={self.order_id}, amount={self.amount})"


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class IdempotencyRecord(IdempotencyMixin, Base):
    pass


class VoucherRedemption(Base):
    """A voucher (a coupon) a member redeemed at a mall: once per code, with the points it cost."""

    __tablename__ = "voucher_redemption"
    __table_args__ = (
        CheckConstraint("points_cost >= 0", name="ck_voucher_redemption_points_cost"),
        Index("ix_voucher_redemption_member_occurred", "member_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(String(32))
    mall_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32), default="")
    voucher_code: Mapped[str] = mapped_column(String(64), unique=True)
    voucher_name: Mapped[str] = mapped_column(String(100), default="")
    points_cost: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    operator_id: Mapped[str] = mapped_column(String(64), default="")
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"VoucherRedemption({self.voucher_code!r}, member_id={self.member_id!r}, mall_id={self.mall_id!r})"


class VoucherFile(Base):
    """A 变动凭证: a receipt photo or scan uploaded for a member, referenced by a manual adjustment."""

    __tablename__ = "voucher_file"
    __table_args__ = (CheckConstraint("size >= 0", name="ck_voucher_file_size"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    member_id: Mapped[str] = mapped_column(String(32), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploader_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"VoucherFile({self.id!r}, member_id={self.member_id!r}, file_name={self.file_name!r})"
