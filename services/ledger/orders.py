"""Orders: refunding them, the points debt, and reading them (RecordOrderCommand, in commands.py, records them).

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
from datetime import datetime

from sqlalchemy import Row, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.scope import require_managed_mall
from services.common.validation import aware, known_enum, parse_int_id, to_timestamp
from services.ledger.convert import order_to_proto, posted_to_proto, refund_to_proto
from services.ledger.inputs import CHANNEL_NAMES, external_order_no
from services.ledger.journal import Journal
from services.ledger.journal_events import stage_event, write_staged_events
from services.ledger.models import Order, OrderRefund
from services.ledger.postings import Posting


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
