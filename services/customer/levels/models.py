"""Level definitions and every change of a member's level."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import ID, Base


class Level(Base):
    """A member level (1..10): its discount, how members reach it, and how long it lasts."""

    __tablename__ = "level"

    number: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    # 950 = 95% of the price.
    discount_permille: Mapped[int] = mapped_column(Integer)
    # crowdpack.customer.v1.UpgradeMode value: manual or automatic by cumulative spend.
    upgrade_mode: Mapped[int] = mapped_column(SmallInteger)
    upgrade_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # 0 = never expires.
    validity_months: Mapped[int] = mapped_column(SmallInteger, default=0)
    # Spend within the validity period that keeps the level at expiry; below it, one level down.
    retain_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Level({self.number}, {self.name!r})"


class LevelChange(Base):
    __tablename__ = "level_change"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    from_level: Mapped[int] = mapped_column(SmallInteger)
    to_level: Mapped[int] = mapped_column(SmallInteger)
    # crowdpack.customer.v1.LevelChangeKind value: upgrade, retain, downgrade, manual.
    kind: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    operator_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"LevelChange(customer_id={self.customer_id}, {self.from_level}->{self.to_level})"
