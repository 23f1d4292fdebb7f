"""Crowd package tables: categories per mall, and packages with their stored results."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import ID, Base


class CrowdCategory(Base):
    __tablename__ = "crowd_category"
    __table_args__ = (UniqueConstraint("mall_id", "name", name="uq_crowd_category_mall_name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    mall_id: Mapped[int] = mapped_column(ForeignKey("mall.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(Integer)
    # The mall's "uncategorised" category.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"CrowdCategory(id={self.id}, mall_id={self.mall_id}, name={self.name!r})"


class CrowdPackage(Base):
    __tablename__ = "crowd_package"
    __table_args__ = (UniqueConstraint("mall_id", "name", name="uq_crowd_package_mall_name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    mall_id: Mapped[int] = mapped_column(ForeignKey("mall.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("crowd_category.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    remark: Mapped[str] = mapped_column(String(500), default="")
    # A serialized crowdpack.customer.v1.CrowdDefinition.
    definition: Mapped[bytes] = mapped_column(LargeBinary)
    # crowdpack.customer.v1.PackageStatus value.
    status: Mapped[int] = mapped_column(SmallInteger)
    member_count: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str] = mapped_column(String(500), default="")
    # Portable roaring bitmap of member ids (pyroaring's format).
    result: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    # Refresh bookkeeping: when a refresh was asked for, how often it failed, when to try next.
    refresh_requested_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    creator_id: Mapped[str] = mapped_column(String(64))
    editor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"CrowdPackage(id={self.id}, name={self.name!r}, status={self.status})"
