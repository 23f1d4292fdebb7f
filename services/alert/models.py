"""The alert service's tables: rules, alerts, the order windows they read, the projections of the
customer service's malls, stores and members, the whitelist and the daily digests."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.consumer import ProcessedMessageMixin
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import BIGINT_PK, OutboxMixin


class Base(DeclarativeBase):
    pass


class WhitelistEntry(Base):
    """A member whose orders never raise an alert."""

    __tablename__ = "whitelist_entry"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    operator_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"WhitelistEntry(member_id={self.member_id!r})"


class MallView(Base):
    """The customer service's mall, as its customer.mall.changed events last described it."""

    __tablename__ = "mall_view"

    mall_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped whenever the mall's rules or stores change: evaluators cache both per revision.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # The change_time of the event applied last (an older event changes nothing); None until the mall's own.
    changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"MallView(mall_id={self.mall_id!r}, timezone={self.timezone!r})"


class StoreView(Base):
    """The customer service's store, as its customer.store.changed events last described it."""

    __tablename__ = "store_view"

    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mall_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(50), default="")
    business_format: Mapped[str] = mapped_column(String(50), default="")
    floor: Mapped[str] = mapped_column(String(20), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"StoreView(store_id={self.store_id!r}, mall_id={self.mall_id!r})"


class MemberView(Base):
    """What the alert service needs of a member: never alert on virtual ones; list filters."""

    __tablename__ = "member_view"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    store_member: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    def __repr__(self) -> str:
        return f"MemberView(member_id={self.member_id!r})"


class MemberOrder(Base):
    """An order the rules consider (not online; reads leave out what is older than 90 days), with its paid amount
    less refunds."""

    __tablename__ = "member_order"
    # The window index covers the row: a member's 90 days read from the index alone.
    __table_args__ = (Index("ix_member_order_window", "member_id", "mall_id", "occur_time", "order_id", "store_id",
                            "paid_amount", "fully_refunded"),)

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(32))
    mall_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    fully_refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    occur_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"MemberOrder(order_id={self.order_id!r}, member_id={self.member_id!r})"


class AlertRule(Base):
    """One abnormal-member rule of a mall (at most 20 live per mall)."""

    __tablename__ = "alert_rule"

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    mall_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(50))
    # crowdpack.alert.v1.StoreScopeKind value, and its categories / formats / floors / tags / store ids.
    scope_kind: Mapped[int] = mapped_column(Integer)
    scope_values: Mapped[list[str]] = mapped_column(JSON, default=list)
    single_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    single_min_paid: Mapped[Optional[int]] = mapped_column(BigInteger)
    any_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    any_days: Mapped[Optional[int]] = mapped_column(Integer)
    any_min_count: Mapped[Optional[int]] = mapped_column(Integer)
    any_min_paid: Mapped[Optional[int]] = mapped_column(BigInteger)
    total_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    total_days: Mapped[Optional[int]] = mapped_column(Integer)
    total_min_count: Mapped[Optional[int]] = mapped_column(Integer)
    total_min_paid: Mapped[Optional[int]] = mapped_column(BigInteger)
    creator_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    editor_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # Bumped by every edit of the scope or the conditions; a re-evaluation pass belongs to one version.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The background pass: crowdpack.alert.v1.EvaluationState value, the version it evaluates, progress.
    eval_state: Mapped[int] = mapped_column(Integer)
    eval_version: Mapped[int] = mapped_column(Integer, default=0)
    eval_total: Mapped[int] = mapped_column(BigInteger, default=0)
    eval_done: Mapped[int] = mapped_column(BigInteger, default=0)
    eval_raised: Mapped[int] = mapped_column(BigInteger, default=0)
    # The last member the pass evaluated (it resumes after it, after a restart).
    eval_cursor: Mapped[str] = mapped_column(String(32), default="")
    eval_started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    eval_finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"AlertRule(id={self.id}, mall_id={self.mall_id!r}, name={self.name!r})"


class Alert(Base):
    """One per member and rule: raised on the first trigger, updated by the next ones."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("member_id", "rule_id", name="uq_alert_member_rule"),
                      Index("ix_alert_mall", "mall_id", "id"))

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    mall_id: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[int] = mapped_column(BigInteger, index=True)
    rule_name: Mapped[str] = mapped_column(String(50))
    # Bit (1 << ConditionKind) per condition that ever fired.
    conditions: Mapped[int] = mapped_column(Integer)
    # crowdpack.alert.v1.AlertState value.
    state: Mapped[int] = mapped_column(Integer)
    first_triggered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_triggered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    order_count: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"Alert(id={self.id}, member_id={self.member_id!r}, rule_id={self.rule_id})"


class AlertOrder(Base):
    """An order behind an alert, per condition it counted towards, as it stood at the trigger."""

    __tablename__ = "alert_order"

    alert_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    condition: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32))
    paid_amount: Mapped[int] = mapped_column(BigInteger)
    occur_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"AlertOrder(alert_id={self.alert_id}, order_id={self.order_id!r})"


class Digest(Base):
    """A mall's daily digest: made once per local date, then POSTed to the webhook until it answers 2xx."""

    __tablename__ = "digest"
    __table_args__ = (Index("ix_digest_pending", "delivery_state", "next_attempt_at"),
                      Index("ix_digest_mall", "mall_id", "local_date"))

    # "<mall_id>:<YYYY-MM-DD>": the webhook's Idempotency-Key.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mall_id: Mapped[str] = mapped_column(String(32))
    local_date: Mapped[str] = mapped_column(String(10))
    alert_count: Mapped[int] = mapped_column(Integer)
    # The newest alert the digest covers; the next digest of the mall starts after it.
    last_alert_id: Mapped[int] = mapped_column(BigInteger)
    # The JSON body POSTed to the webhook.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # crowdpack.alert.v1.DeliveryState value.
    delivery_state: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Digest(id={self.id!r}, state={self.delivery_state})"


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class IdempotencyRecord(IdempotencyMixin, Base):
    pass
