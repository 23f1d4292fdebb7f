"""Idempotent mutations keyed by ``request_id`` (AIP-155).

The first request with an id does its work and stores its response in the same
transaction. A repeat with the same method and body gets the stored response and has no
second effect; a repeat with a different body is ALREADY_EXISTS.

``idempotent("RpcName")`` puts a service method under these rules: the method owns one write
transaction, and its response type is the RPC's, read from the request's descriptor.

``stored_answers`` and ``store_answers`` are the same rules for a batch of requests decided in
one synchronous transaction (the ledger's group commit): one lookup and one insert for all.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from sqlalchemy import DateTime, LargeBinary, Select, String, Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.common.bulk import insert_rows
from services.common.chunks import IN_LIST, chunks
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument
from services.common.mapped import MappedMixin, table_of

R = TypeVar("R", bound=Message)
Q = TypeVar("Q", bound=Message)
P = ParamSpec("P")
MAX_REQUEST_ID = 128


class IdempotencyMixin(MappedMixin):
    __tablename__ = "idempotency_record"

    request_id: Mapped[str] = mapped_column(String(MAX_REQUEST_ID), primary_key=True)
    method: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    # Indexed for retention (services/common/retention.py).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"IdempotencyRecord({self.request_id!r}, {self.method!r})"


def request_id_of(request: Message) -> str:
    """The ``request_id`` every mutation request carries (AIP-155)."""
    return request.request_id  # type: ignore[attr-defined]  # a field of each generated class, not of Message


def request_hash(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


def check_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidArgument("is required on every mutation", field="request_id")
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgument(f"must be at most {MAX_REQUEST_ID} characters", field="request_id")


def _answer(row: Any, method: str, digest: str, response_cls: type[R]) -> R:
    """The stored response of ``row`` if it was stored for this method and body; else ALREADY_EXISTS."""
    if row.method != method or row.request_hash != digest:
        raise AlreadyExists("was already used for a different request", field="request_id")
    response = response_cls()
    response.ParseFromString(row.response)
    return response


async def _stored(session: AsyncSession, model: type[IdempotencyMixin], method: str, request: Message,
                  response_cls: type[R]) -> R | None:
    row = await session.get(model, request_id_of(request))
    if row is None:
        return None
    return _answer(row, method, request_hash(request), response_cls)


class Keyed(Protocol):
    """One request of a batch, as the batch form sees it (``hash`` is its ``request_hash``)."""

    @property
    def request_id(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def response_cls(self) -> type[Message]: ...


@cache
def _answers_of(table: Table) -> Select[Any]:
    """The stored answers of some request ids, as table rows (no ORM objects: batches read them every time)."""
    c = table.c
    return select(c.request_id, c.method, c.request_hash, c.response).where(
        c.request_id.in_(bindparam("ids", expanding=True)))


def stored_answers(session: Session, model: type[IdempotencyMixin],
                   requests: Sequence[Keyed]) -> list[Message | AlreadyExists | None]:
    """For each request, in order: its stored response, ALREADY_EXISTS (its request_id was used for another
    method or body), or None (not seen yet). One query per ``IN_LIST`` distinct request ids."""
    rows: dict[str, Any] = {}
    ids = sorted({r.request_id for r in requests})
    for chunk in chunks(ids, IN_LIST):
        for stored in session.execute(_answers_of(table_of(model)), {"ids": chunk}):
            rows[stored.request_id] = stored
    answers: list[Message | AlreadyExists | None] = []
    for r in requests:
        row = rows.get(r.request_id)
        if row is None:
            answers.append(None)
            continue
        try:
            answers.append(_answer(row, r.method, r.hash, r.response_cls))
        except AlreadyExists as err:
            answers.append(err)
    return answers


def store_answers(session: Session, model: type[IdempotencyMixin], answered: Sequence[tuple[Keyed, Message]],
                  *, now: datetime | None = None) -> None:
    """Stores the responses of requests decided in this transaction, with one driver-level INSERT.

    Each request_id must be new (``stored_answers`` gave None) and appear once: a twin is a
    unique-key violation that fails the transaction.
    """
    created = now or utcnow()
    insert_rows(session.connection(), table_of(model),
                ("request_id", "method", "request_hash", "response", "created_at"),
                [(r.request_id, r.method, r.hash, response.SerializeToString(), created) for r, response in answered])


async def run_idempotent(db: Database, model: type[IdempotencyMixin], method: str, request: Message,
                         response_cls: type[R], work: Callable[[AsyncSession], Awaitable[R]]) -> R:
    """Runs ``work`` once per ``request.request_id`` in one write transaction with its record."""
    check_request_id(request_id_of(request))
    try:
        async with db.transaction() as session:
            stored = await _stored(session, model, method, request, response_cls)
            if stored is not None:
                return stored
            response = await work(session)
            session.add(model(request_id=request_id_of(request), method=method,
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


class IdempotentOwner(Protocol):
    """What ``idempotent`` needs of the object whose method it wraps."""

    db: Database
    idempotency: type[IdempotencyMixin]


OwnerT = TypeVar("OwnerT", bound=IdempotentOwner)


@cache
def response_type(request_type: type[Message], method: str) -> type[Message]:
    """The response class of RPC ``method`` whose request is ``request_type`` (from the proto descriptors)."""
    for service in request_type.DESCRIPTOR.file.services_by_name.values():
        rpc = service.methods_by_name.get(method)
        if rpc is not None and rpc.input_type is request_type.DESCRIPTOR:
            # Message.DESCRIPTOR is typed as the Python or the upb descriptor; at run time they are one class.
            return GetMessageClass(cast(Descriptor, rpc.output_type))
    raise LookupError(f"no RPC {method} takes {request_type.DESCRIPTOR.full_name}")


def idempotent(method: str) -> Callable[[Callable[Concatenate[OwnerT, AsyncSession, Q, P], Awaitable[R]]],
                                        Callable[Concatenate[OwnerT, Q, P], Awaitable[R]]]:
    """Runs the decorated method once per ``request.request_id`` (``run_idempotent``), keyed by RPC ``method``.

    The method is written ``async def m(self, session, request, ...)`` and called ``m(request, ...)``:
    the wrapper opens the write transaction (with the idempotency record in it) and hands it the
    session. Its owner has ``db`` and ``idempotency`` (the service's IdempotencyRecord model).
    """

    def decorate(work: Callable[Concatenate[OwnerT, AsyncSession, Q, P], Awaitable[R]]
                 ) -> Callable[Concatenate[OwnerT, Q, P], Awaitable[R]]:
        @functools.wraps(work)
        async def run(self: OwnerT, request: Q, /, *args: P.args, **kwargs: P.kwargs) -> R:
            # The RPC's response class, which the decorated method's declared return type R names. (mypy
            # checks a class object against Hashable with the instances' __hash__; classes are hashable.)
            response_cls = cast(type[R], response_type(type(request), method))  # type: ignore[arg-type]  # see above
            return await run_idempotent(self.db, self.idempotency, method, request, response_cls,
                                        lambda session: work(self, session, request, *args, **kwargs))

        return run

    return decorate
