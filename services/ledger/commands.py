"""Requests the group commit processes many at a time: PostEntry, PostEntries and RecordOrder.

``run_batch`` decides a whole batch of them with one ``Book``: one idempotency lookup, one read
of the accounts (locked) and of what else they need, a check of each request in turn (all or
none per request; a refused request writes nothing), then one write per table. A batch of a
hundred requests costs about as many statements as one. It is synchronous: the group commit
runs it in one hop on the writer (``Database.run_sync_write``).

Idempotency is ``run_idempotent``'s (services/common/idempotency.py), in its batch form
(``stored_answers``, ``store_answers``), with the same records: the same request_id and body
answer with the stored response, another body is ALREADY_EXISTS. A request the
batch cannot decide by itself, such as a repeat of a request_id earlier in the same batch or of
an external order number already recorded, is handed back to run alone, through
``run_idempotent``, after the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import DomainError
from services.common.idempotency import request_hash, store_answers, stored_answers
from services.ledger.convert import account_to_proto, posted_to_proto
from services.ledger.journal import Book, Needs, Posted, Posting
from services.ledger.models import IdempotencyRecord


class RunAlone(Exception):
    """This request cannot be decided inside the batch; run it by itself afterwards."""


class Command(ABC):
    """One batchable request."""

    method: ClassVar[str]
    response_cls: ClassVar[type[Message]]

    def __init__(self, request: Message, operator_id: str) -> None:
        self.request = request
        self.operator_id = operator_id
        self.hash = request_hash(request)

    @property
    def request_id(self) -> str:
        return self.request.request_id  # type: ignore[attr-defined, no-any-return]

    @abstractmethod
    def needs(self) -> Needs:
        """What the request reads before it can be checked."""

    @abstractmethod
    def apply(self, book: Book) -> None:
        """Checks and applies the request in memory; raises a DomainError (nothing applied) or RunAlone."""

    @abstractmethod
    def finish(self, session: Session) -> Message:
        """After the book is flushed: writes anything further, and returns the answer."""

    @classmethod
    def run_alone_first(cls, session: Session, commands: Sequence[Command]) -> set[int]:
        """Which of ``commands`` (of this class) must run alone, from what the database holds."""
        return set()

    async def run_alone(self, session: AsyncSession, now: datetime) -> Message:
        """The request by itself (``run_idempotent``'s work)."""
        return await session.run_sync(lambda sync_session: self._decide_alone(sync_session, now))

    def _decide_alone(self, session: Session, now: datetime) -> Message:
        book = Book(session, now=now)
        book.load(self.needs())
        self.apply(book)
        book.flush()
        return self.finish(session)


class PostEntryCommand(Command):
    method = "PostEntry"
    response_cls = pb.PostEntryResponse

    def __init__(self, request: pb.PostEntryRequest, posting: Posting, operator_id: str) -> None:
        super().__init__(request, operator_id)
        self.posting = posting
        self.posted: list[Posted] = []

    def needs(self) -> Needs:
        return Needs.of([self.posting])

    def apply(self, book: Book) -> None:
        book.check_places([self.posting])
        self.posted = book.apply(self.request_id, [self.posting], operator_id=self.operator_id)

    def finish(self, session: Session) -> Message:
        return pb.PostEntryResponse(entry=posted_to_proto(self.posted[0]))


class PostEntriesCommand(Command):
    method = "PostEntries"
    response_cls = pb.PostEntriesResponse

    def __init__(self, request: pb.PostEntriesRequest, postings: list[Posting], operator_id: str) -> None:
        super().__init__(request, operator_id)
        self.postings = postings
        self.posted: list[Posted] = []
        self.accounts: list[pb.Account] = []

    def needs(self) -> Needs:
        return Needs.of(self.postings)

    def apply(self, book: Book) -> None:
        book.check_places(self.postings)
        self.posted = book.apply(self.request_id, self.postings, operator_id=self.operator_id, together=True)
        touched = {(p.member_id, p.asset) for p in self.postings}
        # The accounts as this request left them (later requests of the batch may move them on).
        self.accounts = [account_to_proto(book.accounts[key])
                         for key in sorted(touched, key=lambda k: book.accounts[k].id)]

    def finish(self, session: Session) -> Message:
        return pb.PostEntriesResponse(entry_ids=[str(e.id) for e in self.posted], accounts=self.accounts)


Outcome = Message | DomainError | None  # an answer, a refusal, or None: run it alone


def run_batch(session: Session, commands: Sequence[Command], *, now: datetime) -> list[Outcome]:
    """Decides and writes every command it can; returns one outcome per command, in order."""
    outcomes: list[Outcome] = [None] * len(commands)
    todo: list[int] = []
    first_of: set[str] = set()
    for i, (command, stored) in enumerate(zip(commands, stored_answers(session, IdempotencyRecord, commands),
                                               strict=True)):
        if stored is not None:
            outcomes[i] = stored
        elif command.request_id not in first_of:
            first_of.add(command.request_id)
            todo.append(i)
        # else: a twin later in the batch; it runs alone and finds what the first one stored

    alone: set[int] = set()
    for cls in {type(commands[i]) for i in todo}:
        members = [i for i in todo if type(commands[i]) is cls]
        alone |= {members[j] for j in cls.run_alone_first(session, [commands[i] for i in members])}
    todo = [i for i in todo if i not in alone]

    book = Book(session, now=now)
    needs = Needs()
    for i in todo:
        needs.add(commands[i].needs())
    book.load(needs)
    accepted = []
    for i in todo:
        try:
            commands[i].apply(book)
        except RunAlone:
            continue
        except DomainError as err:
            outcomes[i] = err
            continue
        accepted.append(i)
    book.flush()
    answered = []
    for i in accepted:
        response = commands[i].finish(session)
        answered.append((commands[i], response))
        outcomes[i] = response
    store_answers(session, IdempotencyRecord, answered, now=now)
    return outcomes
