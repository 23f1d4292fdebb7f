"""Sign-in, refresh, sign-out and password changes: the rules and the transactions.

Rate limits (failures counted in a 15-minute window; a success clears its account-from-address count):
- one address: 30 failures, whatever accounts it tries;
- one account from one address: 5 failures;
- one account from all addresses: 100 failures, but never against the address it last signed in from,
  so guessing at someone's account from elsewhere does not lock them out.
A blocked attempt is RESOURCE_EXHAUSTED with the seconds to wait, and its password is not even checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from services.common.auth import Caller, Role
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.common.identity import Signer
from services.customer.sessions.models import SignInThrottle, StaffCredential, StaffSession
from services.customer.sessions.passwords import check_new_password, hash_password, verify_password
from services.customer.sessions.repository import SessionRepository

ACCESS_TTL_S = 15 * 60
REFRESH_TTL = timedelta(days=14)
WINDOW = timedelta(minutes=15)
LIMITS = {"addr": 30, "acct-addr": 5, "acct": 100}
ROLES: dict[int, Role] = {
    org_pb.STAFF_ROLE_SUPER_ADMIN: Role.SUPER_ADMIN, org_pb.STAFF_ROLE_MALL_ADMIN: Role.MALL_ADMIN,
    org_pb.STAFF_ROLE_SALES: Role.SALES}
BAD_LOGIN = "the login or the password is wrong"


def aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    refresh_expires: datetime
    staff_id: str
    name: str
    role: Role
    mall_ids: list[str]


class SessionService:
    def __init__(self, db: Database, access_signer: Signer) -> None:
        self.db = db
        self.signer = access_signer

    # --- sign-in -------------------------------------------------------------------------------------------
    async def sign_in(self, login: str, password: str, address: str) -> Issued:
        login = login.strip()
        if not login:
            raise InvalidArgument("is required", field="login")
        if not password:
            raise InvalidArgument("is required", field="password")
        now = utcnow()
        keys = self._keys(login, address)
        async with self.db.read() as session:
            repo = SessionRepository(session)
            staff = await repo.staff_by_phone(login)
            credential = await repo.credential(staff.id) if staff is not None else None
            throttles = await repo.throttles(list(keys.values()))
        known_address = credential is not None and credential.last_address == address and address != ""
        self._refuse_if_blocked(throttles, keys, now, skip_account=known_address)
        ok = await verify_password(credential.password_hash if credential else None, password)
        usable = ok and staff is not None and not staff.disabled and staff.role in ROLES
        async with self.db.transaction() as session:
            repo = SessionRepository(session)
            if not usable:
                await self._count_failure(repo, keys, now)
            else:
                assert staff is not None
                row = (await repo.throttles([keys["acct-addr"]])).get(keys["acct-addr"])
                if row is not None:
                    await repo.delete(row)
                current = await repo.credential(staff.id)
                if current is not None:
                    current.last_address = address
                issued = await self._issue(repo, staff.id, None, now)
        if not usable:
            if ok and staff is not None and staff.disabled:
                raise PermissionDenied("this staff account is disabled", field="login")
            if ok and staff is not None:
                raise PermissionDenied("store staff do not sign in to the back office", field="login")
            raise Unauthenticated(BAD_LOGIN, field="password")
        return issued

    def _keys(self, login: str, address: str) -> dict[str, str]:
        return {"addr": f"addr:{address}", "acct-addr": f"acct-addr:{login}|{address}", "acct": f"acct:{login}"}

    def _refuse_if_blocked(self, throttles: dict[str, SignInThrottle], keys: dict[str, str], now: datetime,
                           *, skip_account: bool) -> None:
        for kind, key in keys.items():
            if kind == "acct" and skip_account:
                continue
            row = throttles.get(key)
            if row is not None and row.blocked_until is not None and aware(row.blocked_until) > now:
                wait = (aware(row.blocked_until) - now).total_seconds()
                raise ResourceExhausted(f"too many failed sign-ins; try again in {int(wait) + 1} s",
                                        retry_after_s=wait, field="login")

    async def _count_failure(self, repo: SessionRepository, keys: dict[str, str], now: datetime) -> None:
        rows = await repo.throttles(list(keys.values()))
        for kind, key in keys.items():
            row = rows.get(key)
            if row is None:
                row = SignInThrottle(key=key, failures=0, window_start=now, blocked_until=None)
                repo.add(row)
            elif aware(row.window_start) + WINDOW <= now:
                row.failures, row.window_start, row.blocked_until = 0, now, None
            row.failures += 1
            if row.failures >= LIMITS[kind]:
                row.blocked_until = aware(row.window_start) + WINDOW

    async def _issue(self, repo: SessionRepository, staff_id: int, family_id: int | None, now: datetime) -> Issued:
        staff = await repo.staff(staff_id)
        if staff is None or staff.disabled or staff.role not in ROLES:
            raise Unauthenticated("this staff account can no longer sign in", field="refresh_token")
        secret = secrets.token_urlsafe(32)
        row = StaffSession(family_id=family_id or 0, staff_id=staff_id, token_hash=digest(secret), created_at=now,
                           expires_at=now + REFRESH_TTL)
        repo.add(row)
        await repo.flush()
        if family_id is None:
            row.family_id = row.id
        malls = await repo.mall_ids(staff_id)
        role = ROLES[staff.role]
        access = self.signer.sign(Caller(staff_id=str(staff_id), role=role, mall_ids=frozenset(malls)),
                                  ttl_s=ACCESS_TTL_S, extra={"sid": row.family_id})
        return Issued(access, f"{row.id}.{secret}", row.expires_at, str(staff_id), staff.name, role, malls)

    # --- refresh and sign-out ------------------------------------------------------------------------------
    async def _presented(self, repo: SessionRepository, token: str) -> StaffSession:
        ident, _, secret = token.strip().partition(".")
        row = await repo.session_row(int(ident)) if ident.isdigit() and len(ident) < 19 else None
        if row is None or not hmac.compare_digest(row.token_hash, digest(secret)):
            raise Unauthenticated("the refresh token is not valid", field="refresh_token")
        return row

    async def refresh(self, token: str) -> Issued:
        now = utcnow()
        reused = False
        async with self.db.transaction() as session:
            repo = SessionRepository(session)
            row = await self._presented(repo, token)
            if row.revoked_at is not None or aware(row.expires_at) <= now:
                raise Unauthenticated("the refresh token was revoked or has expired; sign in again",
                                      field="refresh_token")
            if row.used_at is not None:
                # A rotated token used again: someone holds a copy. End the whole sign-in.
                await repo.revoke_family(row.family_id, now)
                reused = True
            else:
                row.used_at = now
                issued = await self._issue(repo, row.staff_id, row.family_id, now)
        if reused:
            raise Unauthenticated("the refresh token was already used; every token of this sign-in is revoked",
                                  field="refresh_token")
        return issued

    async def revoke(self, token: str) -> None:
        async with self.db.transaction() as session:
            repo = SessionRepository(session)
            row = await self._presented(repo, token)
            await repo.revoke_family(row.family_id, utcnow())

    # --- passwords -----------------------------------------------------------------------------------------
    async def set_password(self, caller: Caller, staff_id: str, current: str, new: str) -> None:
        if not staff_id.isdigit() or len(staff_id) > 18:
            raise InvalidArgument("must be a staff id", field="staff_id")
        check_new_password(new)
        own = caller.role in (Role.SUPER_ADMIN, Role.MALL_ADMIN, Role.SALES) and caller.staff_id == staff_id
        if caller.role not in (Role.SUPER_ADMIN, Role.SYSTEM) and not own:
            raise PermissionDenied("only a super admin sets another staff member's password", field="staff_id")
        async with self.db.read() as session:
            repo = SessionRepository(session)
            staff = await repo.staff(int(staff_id))
            credential = await repo.credential(int(staff_id)) if staff is not None else None
        if staff is None:
            raise NotFound("no such staff member", field="staff_id")
        if own and caller.role != Role.SUPER_ADMIN:
            if credential is None:
                raise FailedPrecondition("ask a super admin to set your first password", field="current_password")
            if not await verify_password(credential.password_hash, current):
                raise PermissionDenied("the current password is wrong", field="current_password")
        hashed = await hash_password(new)
        async with self.db.transaction() as session:
            repo = SessionRepository(session)
            row = await repo.credential(int(staff_id))
            if row is None:
                repo.add(StaffCredential(staff_id=int(staff_id), password_hash=hashed, updated_at=utcnow(),
                                         last_address=""))
            else:
                row.password_hash, row.updated_at = hashed, utcnow()
            # A new password ends every session of the account.
            await repo.revoke_staff(int(staff_id), utcnow())
