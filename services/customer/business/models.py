"""The business part of a customer: its archive, contacts, ownership history and code sequence.

A business customer is a ``customer`` row with ``kind`` = business plus one
``business_profile`` row sharing its id; both are written in one transaction.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import ID, Base

# crowdpack.customer.v1.CustomerKind.CUSTOMER_KIND_BUSINESS
KIND_BUSINESS = 2


class BusinessProfile(Base):
    __tablename__ = "business_profile"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    # "CUS" + YYYYMMDD + 4-digit daily sequence; never changes.
    code: Mapped[str] = mapped_column(String(16), unique=True)
    short_name: Mapped[str] = mapped_column(String(50), default="")
    # crowdpack.customer.v1.BusinessCustomerType value (0 = not given).
    type: Mapped[int] = mapped_column(SmallInteger, default=0)
    industry: Mapped[str] = mapped_column(String(50), default="", index=True)
    scale: Mapped[str] = mapped_column(String(50), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    website: Mapped[str] = mapped_column(String(500), default="")
    founded_date: Mapped[Optional[date]] = mapped_column(Date)
    credit_limit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_terms: Mapped[str] = mapped_column(String(100), default="")
    payment_days: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(50), default="")
    owner_staff_id: Mapped[str] = mapped_column(String(64), index=True)
    # crowdpack.customer.v1.BusinessCustomerStatus value.
    status: Mapped[int] = mapped_column(SmallInteger, index=True)
    annual_revenue_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    cooperation_years: Mapped[int] = mapped_column(Integer, default=0)
    # crowdpack.customer.v1.BusinessCustomerGrade value; computed by grade.compute_grade.
    grade: Mapped[int] = mapped_column(SmallInteger, index=True)
    last_follow_up_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), index=True)
    created_by: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"BusinessProfile(customer_id={self.customer_id}, code={self.code!r}, grade={self.grade})"


PRIMARY = text("is_primary")


class Contact(Base):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(50), default="")
    department: Mapped[str] = mapped_column(String(50), default="")
    mobile: Mapped[Optional[str]] = mapped_column(String(11))
    landline: Mapped[str] = mapped_column(String(30), default="")
    email: Mapped[Optional[str]] = mapped_column(String(254))
    wechat: Mapped[str] = mapped_column(String(64), default="")
    birthday: Mapped[Optional[date]] = mapped_column(Date)
    hobbies: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # At most one primary contact per customer, whatever the application does.
    __table_args__ = (
        Index("uq_contact_primary", "customer_id", unique=True, sqlite_where=PRIMARY, postgresql_where=PRIMARY),
    )

    def __repr__(self) -> str:
        return f"Contact(id={self.id}, customer_id={self.customer_id}, primary={self.is_primary})"


class OwnershipTransfer(Base):
    __tablename__ = "ownership_transfer"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    from_staff_id: Mapped[str] = mapped_column(String(64))
    to_staff_id: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Who asked for it: the applicant of an approved application, else the operator.
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    transfer_application_id: Mapped[Optional[int]] = mapped_column(BigInteger)

    def __repr__(self) -> str:
        return f"OwnershipTransfer(customer_id={self.customer_id}, {self.from_staff_id!r} -> {self.to_staff_id!r})"


# crowdpack.customer.v1.TransferApplicationState values.
APPLICATION_PENDING, APPLICATION_APPROVED, APPLICATION_REJECTED = 1, 2, 3
PENDING = text("state = 1")


class TransferApplication(Base):
    """A salesperson's application to hand a customer to someone else, and an administrator's decision."""

    __tablename__ = "transfer_application"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    from_staff_id: Mapped[str] = mapped_column(String(64))
    to_staff_id: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[int] = mapped_column(SmallInteger, index=True)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decision_note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    transfer_id: Mapped[Optional[int]] = mapped_column(BigInteger)

    # One pending application per customer, whatever the application does.
    __table_args__ = (
        Index("uq_transfer_application_pending", "customer_id", unique=True, sqlite_where=PENDING,
              postgresql_where=PENDING),
    )

    def __repr__(self) -> str:
        return f"TransferApplication(id={self.id}, customer_id={self.customer_id}, state={self.state})"


class FollowUp(Base):
    """A dated follow-up note: who, when, how, with which contact, what was said."""

    __tablename__ = "follow_up"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    staff_id: Mapped[str] = mapped_column(String(64))
    followed_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # crowdpack.customer.v1.FollowUpMethod value.
    method: Mapped[int] = mapped_column(SmallInteger)
    # No foreign key: a deleted customer's contacts are removed, its follow-ups stay with the name.
    contact_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    contact_name: Mapped[str] = mapped_column(String(50), default="")
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_follow_up_customer_time", "customer_id", "followed_up_at", "id"),)

    def __repr__(self) -> str:
        return f"FollowUp(id={self.id}, customer_id={self.customer_id}, method={self.method})"


class BusinessCodeSequence(Base):
    """The last code sequence number handed out per day (YYYYMMDD)."""

    __tablename__ = "business_code_sequence"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"BusinessCodeSequence({self.day!r}, {self.last_value})"
