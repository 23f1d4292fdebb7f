"""Password hashing: argon2id at argon2-cffi's recommended parameters (RFC 9106 low-memory profile).

Hashing costs ~64 MiB and tens of milliseconds by design, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.common.errors import InvalidArgument

HASHER = PasswordHasher()  # argon2id, the library's defaults
MIN_LENGTH, MAX_LENGTH = 10, 128
# Verified when the login is unknown, so an unknown login costs as much time as a wrong password.
_DUMMY = HASHER.hash("crowdpack-no-such-account")


def check_new_password(password: str, field: str = "new_password") -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidArgument(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters", field=field)
    if password.strip() != password:
        raise InvalidArgument("must not start or end with spaces", field=field)
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return HASHER.verify(stored or _DUMMY, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
