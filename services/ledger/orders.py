"""Orders: recording them with the points they earn, refunding them, and the points debt.

Recording an order earns points in the same transaction, by the mall's points rule and the
member's level; a disabled member's order is recorded but earns nothing. The external order
number is unique per channel, so recording it again (with the same details) answers with the
order recorded first.

A refund, full or partial, takes back the earned points in proportion to the refunded amount
(cumulatively, so the refunds of an order take back exactly what it earned). Points already
spent cannot be taken from the balance, which never goes below zero: they become a points debt
on the account, and later earnings pay the debt off before they add to the balance. "Buy, earn,
spend, refund, keep the points" therefore nets to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from google.protobuf.message import Message
from sqlalchemy import Row, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.chunks import IN_LIST, chunks
from services.common.auth import Caller
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.scope import require_managed_mall
from services.common.validation import aware, known_enum, mainland_mobile, parse_int_id, to_timestamp
from services.ledger.commands import Command, RunAlone
from services.ledger.convert import order_to_proto, posted_to_proto, refund_to_proto
from services.ledger.inputs import external_key, id_text, member_id, past_time, positive_amount
from services.ledger.journal import (
    ORDERS, Book, Journal, Needs, OrderDraft, Posted, Posting, write_staged_events, stage_event,
)
from services.ledger.models import Order, OrderRefund
from services.ledger.statements import EntryRepository

CHANNEL_NAMES = {v: pb.OrderChannel.Name(v) for v in pb.OrderChannel.values()}
MAX_BUYER_NAME = 100
# Which of some external order numbers are recorded on some channels (the caller matches the pairs). Both lists,
# so the search goes down the (channel, external_order_no) key: numbers alone would scan every order.
RECORDED_OF = select(ORDERS.c.channel, ORDERS.c.external_order_no).where(
    ORDERS.c.channel.in_(bindparam("channels", expanding=True)),
    ORDERS.c.external_order_no.in_(bindparam("numbers", expanding=True)))


@dataclass(frozen=True)
class NewOrder:
    member_id: str
    mall_id: str
    store_id: str
    channel: int
    external_order_no: str
    amount: int
    paid_amount: int
    occurred_at: datetime
    buyer_real_name: str = ""
    buyer_phone: str = ""

    def same_as(self, order: Order) -> bool:
        return (order.member_id, order.mall_id, order.store_id, order.amount, order.paid_amount,
                aware(order.occurred_at), order.buyer_real_name, order.buyer_phone) == (
                    self.member_id, self.mall_id, self.store_id, self.amount, self.paid_amount, self.occurred_at,
                    self.buyer_real_name, self.buyer_phone)


def external_order_no(value: str, field: str = "external_order_no") -> str:
    return external_key(value, field)


def buyer_real_name(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_BUYER_NAME or not value.isprintable():
        raise InvalidArgument(f"must be at most {MAX_BUYER_NAME} printable characters", field="buyer_real_name")
    return value


def parse_order(request: pb.RecordOrderRequest, now: datetime) -> NewOrder:
    amount = positive_amount(request.amount, "amount")
    if not 0 <= request.paid_amount <= amount:
        raise InvalidArgument("must be 0 to amount", field="paid_amount")
    mall = id_text(request.mall_id, "mall_id")
    if not mall:
        raise InvalidArgument("is required", field="mall_id")
    return NewOrder(
        member_id=member_id(request.member_id), mall_id=mall, store_id=id_text(request.store_id, "store_id"),
        channel=known_enum(pb.OrderChannel, request.channel, "channel", allow_unspecified=False),
        external_order_no=external_order_no(request.external_order_no), amount=amount,
        paid_amount=request.paid_amount,
        occurred_at=past_time(request, "occur_time", now, required=True),  # type: ignore[arg-type]
        buyer_real_name=buyer_real_name(request.buyer_real_name),
        buyer_phone=mainland_mobile(request.buyer_phone, "buyer_phone") or "")


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, order_id: int, *, lock: bool = False) -> Order | None:
        query = select(Order).where(Order.id == order_id)
        if lock:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def by_external_no(self, channel: int, number: str) -> Order | None:
        return await self.session.scalar(
            select(Order).where(Order.channel == channel, Order.external_order_no == number))

    async def add(self, order: Order) -> Order:
        self.session.add(order)
        await self.session.flush()
        return order

    async def add_refund(self, refund: OrderRefund) -> OrderRefund:
        self.session.add(refund)
        await self.session.flush()
        return refund

    async def consumption(self, member: str, start: datetime | None, end: datetime | None,
                          channels: Sequence[int]) -> Sequence[Row]:
        """Per (mall, store): orders not fully refunded, net totals, first and last time."""
        counted = Order.refunded_amount < Order.amount
        query = (
            select(Order.mall_id, Order.store_id,
                   func.sum(case((counted, 1), else_=0)).label("orders"),
                   func.sum(Order.amount - Order.refunded_amount).label("amount"),
                   func.sum(Order.paid_amount - Order.refunded_paid_amount).label("paid"),
                   func.min(case((counted, Order.occurred_at))).label("first"),
                   func.max(case((counted, Order.occurred_at))).label("last"))
            .where(Order.member_id == member)
            .group_by(Order.mall_id, Order.store_id).order_by(Order.mall_id, Order.store_id))
        if start is not None:
            query = query.where(Order.occurred_at >= start)
        if end is not None:
            query = query.where(Order.occurred_at < end)
        if channels:
            query = query.where(Order.channel.in_(channels))
        return (await self.session.execute(query)).all()


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


async def refund_order(session: AsyncSession, request_id: str, order_id: int, amount: int,
                       occurred_at: datetime, *, now: datetime, caller: Caller) -> pb.RefundOrderResponse:
    repo = OrderRepository(session)
    order = await repo.get(order_id, lock=True)
    if order is None:
        raise NotFound(f"no order {order_id}", field="order_id")
    require_managed_mall(caller, order.mall_id, "order_id")  # a mall admin refunds their malls' orders only
    operator_id = caller.staff_id
    left = order.amount - order.refunded_amount
    if left == 0:
        raise FailedPrecondition(f"order {order_id} is already fully refunded", field="order_id")
    if amount > left:
        raise FailedPrecondition(f"only {left} fen of order {order_id} is left to refund", field="amount")
    if occurred_at < aware(order.occurred_at):
        raise InvalidArgument("must not be before the order occurred", field="occur_time")

    total = order.refunded_amount + amount
    paid_after = order.paid_amount * total // order.amount
    reversed_after = order.points_earned * total // order.amount
    due = reversed_after - order.points_reversed
    journal = Journal(session, now=now, operator_id=operator_id)
    postings, owed = [], 0
    if due:
        points = await journal.account(order.member_id, pb.ASSET_POINTS)
        taken = min(due, points.balance)
        owed = due - taken
        if taken:
            postings.append(Posting(
                member_id=order.member_id, asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_REFUND, amount=-taken,
                debt_change=owed,
                note=f"refund of {CHANNEL_NAMES[order.channel]} order {order.external_order_no}",
                document_at=occurred_at, mall_id=order.mall_id, store_id=order.store_id, order_id=order.id, field=""))
        else:
            points.debt += owed  # nothing left to take: the whole share is owed, with no entry
    refund = await repo.add_refund(OrderRefund(
        order_id=order.id, request_id=request_id, amount=amount, paid_amount=paid_after - order.refunded_paid_amount,
        points_reversed=due, points_debt=owed, occurred_at=occurred_at, created_at=now))
    order.refunded_amount, order.refunded_paid_amount, order.points_reversed = total, paid_after, reversed_after
    await session.flush()
    posted = await journal.post(request_id, postings)
    stage_event(session, events.OrderRefunded(
        refund_id=str(refund.id), order_id=str(order.id), member_id=order.member_id, mall_id=order.mall_id,
        store_id=order.store_id, channel=CHANNEL_NAMES[order.channel], refund_amount=amount,
        refund_paid_amount=refund.paid_amount, order_amount=order.amount, order_paid_amount=order.paid_amount,
        total_refunded_amount=total, total_refunded_paid_amount=paid_after, fully_refunded=total == order.amount,
        points_reversed=due, points_debt=owed, order_occur_time=to_timestamp(order.occurred_at),
        refund_time=to_timestamp(occurred_at)))
    await write_staged_events(session)
    return pb.RefundOrderResponse(order=order_to_proto(order), refund=refund_to_proto(refund),
                                  entries=[posted_to_proto(p) for p in posted])


async def find_order(session: AsyncSession, request: pb.GetOrderRequest) -> Order:
    repo = OrderRepository(session)
    if request.order_id:
        order_id = parse_int_id(request.order_id, "order_id")
        order = await repo.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", field="order_id")
        return order
    channel = known_enum(pb.OrderChannel, request.channel, "channel", allow_unspecified=False)
    number = external_order_no(request.external_order_no)
    order = await repo.by_external_no(channel, number)
    if order is None:
        raise NotFound(f"no {CHANNEL_NAMES[channel]} order {number}", field="external_order_no")
    return order


def _totals(orders: int, amount: int, paid: int, first: datetime | None, last: datetime | None) -> pb.ConsumptionTotals:
    return pb.ConsumptionTotals(order_count=orders, total_amount=amount, total_paid_amount=paid,
                                first_order_time=to_timestamp(first), last_order_time=to_timestamp(last))


def summarize(member: str, rows: Sequence[Row]) -> pb.GetConsumptionSummaryResponse:
    """Folds (mall, store) rows into per-store, per-mall and overall totals."""
    def fold(group: Sequence[Row]) -> pb.ConsumptionTotals:
        firsts = [aware(r.first) for r in group if r.first is not None]
        lasts = [aware(r.last) for r in group if r.last is not None]
        return _totals(sum(int(r.orders) for r in group), sum(int(r.amount) for r in group),
                       sum(int(r.paid) for r in group), min(firsts, default=None), max(lasts, default=None))

    malls: dict[str, list[Row]] = {}
    for row in rows:
        malls.setdefault(row.mall_id, []).append(row)
    return pb.GetConsumptionSummaryResponse(
        member_id=member, totals=fold(rows),
        malls=[pb.MallConsumption(mall_id=mall, totals=fold(group),
                                  stores=[pb.StoreConsumption(store_id=r.store_id, totals=fold([r])) for r in group])
               for mall, group in malls.items()])
