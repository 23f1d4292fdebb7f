"""Tables of staff sign-in: a password hash per staff member, refresh sessions, and attempt counters."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.customer.models import ID, Base


class StaffCredential(Base):
    """A staff member's password, as an argon2id hash (the password itself is never stored)."""

    __tablename__ = "staff_credential"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where the staff member last signed in from: the per-account limit never blocks this address.
    last_address: Mapped[str] = mapped_column(String(64), default="")

    def __repr__(self) -> str:
        return f"StaffCredential(staff_id={self.staff_id})"


class StaffSession(Base):
    """One refresh token. Rotation makes a new row of the same family; signing out revokes the family."""

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    family_id: Mapped[int] = mapped_column(ID, index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    # sha256 of the token's secret part (hex): a stolen database does not hold usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when rotated (replaced by a newer token) or revoked (signed out, reuse detected).
    used_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"StaffSession(id={self.id}, staff_id={self.staff_id}, family_id={self.family_id})"


class SignInThrottle(Base):
    """Failed sign-ins counted per key (an address, an account, an account from one address) in a window."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"SignInThrottle(key={self.key!r}, failures={self.failures})"
