"""Idempotent mutations keyed by ``request_id`` (AIP-155).

The first request with an id does its work and stores its response in the same
transaction. A repeat with the same method and body gets the stored response and has no
second effect; a repeat with a different body is ALREADY_EXISTS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument
from services.common.outbox import utcnow

R = TypeVar("R", bound=Message)
MAX_REQUEST_ID = 128


class IdempotencyMixin:
    __tablename__ = "idempotency_record"

    request_id: Mapped[str] = mapped_column(String(MAX_REQUEST_ID), primary_key=True)
    method: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"IdempotencyRecord({self.request_id!r}, {self.method!r})"


def request_hash(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def check_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidArgument("is required on every mutation", field="request_id")
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgument(f"must be at most {MAX_REQUEST_ID} characters", field="request_id")


async def _stored(session: AsyncSession, model: type[IdempotencyMixin], method: str, request: Message,
                  response_cls: type[R]) -> R | None:
    row = await session.get(model, request.request_id)  # type: ignore[attr-defined]
    if row is None:
        return None
    if row.method != method or row.request_hash != request_hash(request):
        raise AlreadyExists("was already used for a different request", field="request_id")
    response = response_cls()
    response.ParseFromString(row.response)
    return response


async def run_idempotent(db: Database, model: type[IdempotencyMixin], method: str, request: Message,
                         response_cls: type[R], work: Callable[[AsyncSession], Awaitable[R]]) -> R:
    """Runs ``work`` once per ``request.request_id`` in one write transaction with its record."""
    check_request_id(request.request_id)  # type: ignore[attr-defined]
    try:
        async with db.transaction() as session:
            stored = await _stored(session, model, method, request, response_cls)
            if stored is not None:
                return stored
            response = await work(session)
            session.add(model(request_id=request.request_id, method=method,  # type: ignore[attr-defined]
                              request_hash=request_hash(request), response=response.SerializeToString(),
                              created_at=utcnow()))
            await session.flush()
        return response
    except IntegrityError:
        # A concurrent twin committed first (PostgreSQL); answer as it did.
        async with db.read() as session:
            stored = await _stored(session, model, method, request, response_cls)
        if stored is None:
            raise
        return stored
