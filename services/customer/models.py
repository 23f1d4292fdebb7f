"""The customer service's tables.

One ``customer`` row per customer, with the parts that apply: the member part (card,
level, channels, status) on the row itself, the business part in ``business_profile``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.consumer import ProcessedMessageMixin
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin

ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"
    # The level and group counts (ListLevels, ListCustomerGroups, the dashboard) read live members from the index
    # alone; the level or group leads, as the single-column indexes these replace did.
    __table_args__ = (Index("ix_customer_level_deleted_at", "level", "deleted_at"),
                      Index("ix_customer_group_id_deleted_at", "group_id", "deleted_at"))

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # crowdpack.customer.v1.CustomerKind value: member or business.
    kind: Mapped[int] = mapped_column(SmallInteger, default=1)
    phone: Mapped[Optional[str]] = mapped_column(String(11), unique=True)
    email: Mapped[Optional[str]] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    real_name: Mapped[str] = mapped_column(String(100), default="")
    gender: Mapped[int] = mapped_column(SmallInteger, default=3)
    birthday: Mapped[Optional[date]] = mapped_column(Date)
    avatar_url: Mapped[str] = mapped_column(String(500), default="")
    wechat_openid: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    wechat_unionid: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    douyin_id: Mapped[Optional[str]] = mapped_column(String(64))
    alipay_id: Mapped[Optional[str]] = mapped_column(String(64))
    xiaohongshu_id: Mapped[Optional[str]] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registration_mall_id: Mapped[Optional[int]] = mapped_column(ForeignKey("mall.id"), index=True)
    card_opened: Mapped[bool] = mapped_column(Boolean, default=False)
    card_number: Mapped[Optional[str]] = mapped_column(String(20), unique=True)
    card_open_time: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    card_open_mall_id: Mapped[Optional[int]] = mapped_column(ForeignKey("mall.id"))
    # crowdpack.customer.v1.OpenChannel value.
    card_open_channel: Mapped[int] = mapped_column(SmallInteger, default=0)
    promotion_channel: Mapped[str] = mapped_column(String(100), default="")
    open_scene: Mapped[str] = mapped_column(String(100), default="")
    level: Mapped[int] = mapped_column(SmallInteger, default=0)
    level_frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    level_expires_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # None means the default group.
    group_id: Mapped[Optional[int]] = mapped_column(ForeignKey("customer_group.id"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # crowdpack.customer.v1.ReviewStatus value.
    review_status: Mapped[int] = mapped_column(SmallInteger, default=2)
    store_member: Mapped[bool] = mapped_column(Boolean, default=False)
    virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Customer(id={self.id}, phone={self.phone!r}, email={self.email!r})"


class TimelineEntry(Base):
    """What happened to a customer, by whom and when: attribute changes, tags, levels, reviews, orders."""

    __tablename__ = "timeline_entry"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    # e.g. "created", "attribute_changed", "tag_added", "tag_removed", "level_changed", "disabled", "order".
    kind: Mapped[str] = mapped_column(String(40))
    # JSON object with the details (field, from, to; tag; level; order id and amount ...).
    detail: Mapped[str] = mapped_column(Text, default="{}")
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"TimelineEntry(customer_id={self.customer_id}, kind={self.kind!r})"


class CustomerInteraction(Base):
    """A mall a member is related to: consumed, redeemed, settled points/red packets or bound a card there."""

    __tablename__ = "customer_interaction"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    mall_id: Mapped[int] = mapped_column(ID, primary_key=True, index=True)
    first_kind: Mapped[str] = mapped_column(String(30))
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerStats(Base):
    """The customer service's projection of the ledger: balances and spend, for lists, levels and segments."""

    __tablename__ = "customer_stats"
    # The member list walks these in order: (sort column, id) is its keyset.
    __table_args__ = tuple(Index(f"ix_customer_stats_{c}_id", c, "customer_id")
                           for c in ("points_balance", "spend_total_fen", "spend_count", "last_spend_at",
                                     "online_count", "online_total_fen", "online_last_at",
                                     "offline_count", "offline_total_fen", "offline_last_at"))

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    points_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    red_packet_balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_count: Mapped[int] = mapped_column(Integer, default=0)
    spend_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    first_spend_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_spend_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # Spend since the current level was reached, for retain decisions.
    level_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    cumulative_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # The last ledger entry applied per asset (an older entry redelivered late never wins).
    points_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)
    red_packet_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)
    stored_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # Online orders (线上下单: vouchers and goods bought online) and offline ones (线下消费: fast points, lightning
    # pay, photo points, POS), each apart: count (a fully refunded order leaves it), total net of refunds, last time.
    online_count: Mapped[int] = mapped_column(Integer, default=0)
    online_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    online_last_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    offline_count: Mapped[int] = mapped_column(Integer, default=0)
    offline_total_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    offline_last_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class MemberOrder(Base):
    """An order as the ledger announced it: for member stats and crowd packages' consumption conditions."""

    __tablename__ = "member_order"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    mall_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    store_id: Mapped[Optional[int]] = mapped_column(BigInteger, index=True)
    # crowdpack.ledger.v1.OrderChannel value name.
    channel: Mapped[str] = mapped_column(String(40))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    fully_refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"MemberOrder({self.order_id}, customer_id={self.customer_id}, amount_fen={self.amount_fen})"


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class IdempotencyRecord(IdempotencyMixin, Base):
    pass
