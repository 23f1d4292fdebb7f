"""Malls, their stores, and the staff who work in them."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import ID, Base


class Mall(Base):
    __tablename__ = "mall"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Mall(id={self.id}, name={self.name!r})"


class Store(Base):
    __tablename__ = "store"
    __table_args__ = (UniqueConstraint("mall_id", "name", name="uq_store_mall_name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    mall_id: Mapped[int] = mapped_column(ForeignKey("mall.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50), default="")
    business_format: Mapped[str] = mapped_column(String(50), default="")
    floor: Mapped[str] = mapped_column(String(20), default="")
    # Comma-separated store tags, e.g. "flagship,new".
    tags: Mapped[str] = mapped_column(String(500), default="")
    brand: Mapped[str] = mapped_column(String(100), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Store(id={self.id}, mall_id={self.mall_id}, name={self.name!r})"


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[Optional[str]] = mapped_column(String(11), unique=True)
    # crowdpack.customer.v1.StaffRole value.
    role: Mapped[int] = mapped_column(SmallInteger)
    # A store's staff member (their phone makes a member a "store member").
    store_id: Mapped[Optional[int]] = mapped_column(ForeignKey("store.id"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Staff(id={self.id}, name={self.name!r}, role={self.role})"


class StaffMall(Base):
    """The malls a mall admin manages."""

    __tablename__ = "staff_mall"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    mall_id: Mapped[int] = mapped_column(ForeignKey("mall.id"), primary_key=True)
