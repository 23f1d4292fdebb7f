"""The customer service's tables."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import BigInteger, DateTime, Integer, SmallInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.consumer import ProcessedMessageMixin
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Member(Base):
    __tablename__ = "member"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    phone: Mapped[Optional[str]] = mapped_column(String(11), unique=True)
    email: Mapped[Optional[str]] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    gender: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Member(id={self.id}, phone={self.phone!r}, email={self.email!r})"


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class IdempotencyRecord(IdempotencyMixin, Base):
    pass
