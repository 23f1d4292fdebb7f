"""The alert service's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.consumer import ProcessedMessageMixin
from services.common.idempotency import IdempotencyMixin
from services.common.outbox import OutboxMixin


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


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedMessage(ProcessedMessageMixin, Base):
    pass


class IdempotencyRecord(IdempotencyMixin, Base):
    pass
