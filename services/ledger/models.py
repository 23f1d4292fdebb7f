"""The ledger service's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.consumer import ProcessedMessageMixin
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Account(Base):
    """One asset of one member. ``asset`` holds a crowdpack.ledger.v1.Asset value."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("member_id", "asset", name="uq_account_member_asset"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(32), index=True)
    asset: Mapped[int] = mapped_column(SmallInteger)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Account(id={self.id}, member_id={self.member_id!r}, asset={self.asset}, balance={self.balance})"


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class IdempotencyRecord(IdempotencyMixin, Base):
    pass
