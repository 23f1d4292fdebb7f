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
from types import SimpleNamespace
from typing import ClassVar

from google.protobuf.message import Message
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.chunks import IN_LIST, chunks
from services.common.errors import AlreadyExists, DomainError
from services.common.idempotency import request_hash, request_id_of, store_answers, stored_answers
from services.common.validation import to_timestamp
from services.ledger.convert import account_to_proto, order_to_proto, posted_to_proto
from services.ledger.inputs import CHANNEL_NAMES, NewOrder
from services.ledger.journal import ORDERS, Book
from services.ledger.models import IdempotencyRecord
from services.ledger.orders import OrderRepository
from services.ledger.postings import Needs, OrderDraft, Posted, Posting
from services.ledger.statements import EntryRepository

# Which of some external order numbers are recorded on some channels (the caller matches the pairs). Both lists,
# so the search goes down the (channel, external_order_no) key: numbers alone would scan every order.
RECORDED_OF = select(ORDERS.c.channel, ORDERS.c.external_order_no).where(
    ORDERS.c.channel.in_(bindparam("channels", expanding=True)),
    ORDERS.c.external_order_no.in_(bindparam("numbers", expanding=True)))


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
        return request_id_of(self.request)

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


def order_recorded(draft: OrderDraft) -> events.OrderRecorded:
    v = draft.values
    return events.OrderRecorded(
        order_id=str(draft.id), member_id=v["member_id"], mall_id=v["mall_id"], store_id=v["store_id"],
        channel=CHANNEL_NAMES[v["channel"]], external_order_no=v["external_order_no"], amount=v["amount"],
        paid_amount=v["paid_amount"], occur_time=to_timestamp(v["occurred_at"]), points_earned=v["points_earned"],
        record_time=to_timestamp(v["created_at"]), buyer_real_name=v["buyer_real_name"], buyer_phone=v["buyer_phone"])


class RecordOrderCommand(Command):
    """RecordOrder, batchable: the order row, its points and their events, checked against the batch's book."""

    method = "RecordOrder"
    response_cls = pb.RecordOrderResponse

    def __init__(self, request: pb.RecordOrderRequest, new: NewOrder, operator_id: str) -> None:
        super().__init__(request, operator_id)
        self.new = new
        self.draft: OrderDraft | None = None
        self.posted: list[Posted] = []

    @property
    def key(self) -> tuple[int, str]:
        return self.new.channel, self.new.external_order_no

    def needs(self) -> Needs:
        return Needs(accounts={(self.new.member_id, pb.ASSET_POINTS)}, members={self.new.member_id},
                     malls={self.new.mall_id}, places={(self.new.mall_id, self.new.store_id)})

    @classmethod
    def run_alone_first(cls, session: Session, commands: Sequence[Command]) -> set[int]:
        """Orders whose external number is already recorded answer (or refuse) by themselves."""
        keys = [c.key for c in commands if isinstance(c, RecordOrderCommand)]
        recorded: set[tuple[int, str]] = set()
        channels = sorted({channel for channel, _ in keys})
        for chunk in chunks(sorted({number for _, number in keys}), IN_LIST):
            rows = session.execute(RECORDED_OF, {"channels": channels, "numbers": chunk})
            recorded.update((r.channel, r.external_order_no) for r in rows)
        return {i for i, key in enumerate(keys) if key in recorded}

    def apply(self, book: Book) -> None:
        new = self.new
        if any(d.values["channel"] == new.channel and d.values["external_order_no"] == new.external_order_no
               for d in book.orders):
            raise RunAlone  # the same order twice in one batch: the second answers as a repeat
        book.places.check(new.mall_id, new.store_id)
        points = book.account(new.member_id, pb.ASSET_POINTS)
        member = book.member(new.member_id)
        earned = 0 if member.disabled else book.rules[new.mall_id].points_for(new.paid_amount, member.level,
                                                                               new.store_id)
        draft = OrderDraft(values={
            "request_id": self.request_id, "member_id": new.member_id, "mall_id": new.mall_id,
            "store_id": new.store_id, "channel": new.channel, "external_order_no": new.external_order_no,
            "amount": new.amount, "paid_amount": new.paid_amount, "occurred_at": new.occurred_at,
            "points_earned": earned, "refunded_amount": 0, "refunded_paid_amount": 0, "points_reversed": 0,
            "created_at": book.now, "buyer_real_name": new.buyer_real_name, "buyer_phone": new.buyer_phone},
            event=order_recorded)
        postings = []
        if earned:
            about = f"{CHANNEL_NAMES[new.channel]} order {new.external_order_no}"
            postings.append(Posting(member_id=new.member_id, asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_EARN,
                                    amount=earned, note=about, document_at=new.occurred_at, mall_id=new.mall_id,
                                    store_id=new.store_id, order=draft, field=""))
            repay = min(points.debt, earned)
            if repay:
                postings.append(Posting(member_id=new.member_id, asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_REFUND,
                                        amount=-repay, debt_change=-repay, note=f"pays off points debt from {about}",
                                        document_at=new.occurred_at, mall_id=new.mall_id, store_id=new.store_id,
                                        order=draft, field=""))
        self.posted = book.apply(self.request_id, postings, operator_id=self.operator_id)
        book.add_order(draft)
        self.draft = draft

    def finish(self, session: Session) -> Message:
        assert self.draft is not None and self.draft.id is not None
        return pb.RecordOrderResponse(order=order_to_proto(SimpleNamespace(id=self.draft.id, **self.draft.values)),
                                      entries=[posted_to_proto(p) for p in self.posted])

    async def run_alone(self, session: AsyncSession, now: datetime) -> Message:
        existing = await OrderRepository(session).by_external_no(self.new.channel, self.new.external_order_no)
        if existing is None:
            return await super().run_alone(session, now)
        if not self.new.same_as(existing):
            raise AlreadyExists(f"{CHANNEL_NAMES[self.new.channel]} order {self.new.external_order_no} was recorded "
                                "with other details", field="external_order_no")
        entries = await EntryRepository(session).of_request(existing.request_id)
        return pb.RecordOrderResponse(order=order_to_proto(existing), entries=entries)


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
