"""The customer service's projection of the ledger, kept from its events over NATS.

- ``ledger.entry.posted``: balances per asset (newest entry wins, so a late redelivery cannot
  roll a balance back); a manual points or red-packet settlement in a mall relates the member
  to that mall. ``ledger.entries.posted`` (a batch posting's entries, up to 1,000) does the same
  for each entry, with one read of the members and their stats rows for the whole event.
- ``ledger.order.recorded``: spend count, total, first and last time; the mall becomes an
  interaction mall; cumulative spend may upgrade the level; the order is kept for crowd packages;
  a member without a real name or phone takes the buyer's from the order (a phone another
  customer already holds is left alone).
- ``ledger.order.refunded``: the refunded amount leaves the totals (a fully refunded order no
  longer counts) and the level spend.
- ``ledger.voucher.redeemed``: the mall where a voucher was redeemed becomes an interaction mall.

Every handler runs inside the consumer's transaction, which also records the message id, so
each event applies exactly once. Events about unknown members are logged and skipped.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import ledger_events_pb2 as events
from services.common.chunks import IN_LIST, chunks
from services.common.clock import utcnow
from services.common.logs import get_logger
from services.common.validation import aware
from services.customer import member_events, timeline
from services.customer.levels import rules
from services.customer.member_changes import change_attributes
from services.customer.members.repository import MEMBER, MemberRepository
from services.customer.models import Customer, CustomerStats, MemberOrder
from services.customer.stats import stats_row

log = get_logger(__name__)

BALANCE_COLUMNS = {"ASSET_POINTS": ("points_balance", "points_entry_id"),
                   "ASSET_RED_PACKET": ("red_packet_balance_fen", "red_packet_entry_id"),
                   "ASSET_BALANCE": ("stored_balance_fen", "stored_entry_id")}
SETTLEMENT_KINDS = {"ASSET_POINTS": "settle_points", "ASSET_RED_PACKET": "settle_red_packet"}


def _id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


async def _member(session: AsyncSession, member_id: str, subject: str) -> Customer | None:
    number = _id(member_id)
    member = await MemberRepository(session).get_any(number) if number is not None else None
    if member is None:
        log.warning("ledger event for an unknown member skipped", member_id=member_id, subject=subject)
    return member


def _time(ts) -> datetime:
    return aware(ts.ToDatetime())


async def entry_posted(session: AsyncSession, event: Message) -> None:
    assert isinstance(event, events.EntryPosted)
    member = await _member(session, event.member_id, "entry.posted")
    if member is None or event.asset not in BALANCE_COLUMNS:
        return
    if _newer_balance(await stats_row(session, member.id), event):
        member_events.activity_changed(session, member.id)
    await _settlement(session, member.id, event)


async def entries_posted(session: AsyncSession, event: Message) -> None:
    """A batch posting's entries, each applied as ``entry_posted`` applies one, reading members and stats in bulk."""
    assert isinstance(event, events.EntriesPosted)
    wanted = sorted({n for e in event.entries if e.asset in BALANCE_COLUMNS and (n := _id(e.member_id)) is not None})
    known: set[int] = set()
    stats: dict[int, CustomerStats] = {}
    for chunk in chunks(wanted, IN_LIST):
        known.update(await session.scalars(select(Customer.id).where(Customer.id.in_(chunk), Customer.kind == MEMBER)))
        stats.update((row.customer_id, row) for row in await session.scalars(
            select(CustomerStats).where(CustomerStats.customer_id.in_(chunk))))
    changed: set[int] = set()
    unknown: list[str] = []
    for e in event.entries:
        if e.asset not in BALANCE_COLUMNS:
            continue
        member_id = _id(e.member_id)
        if member_id is None or member_id not in known:
            unknown.append(e.entry_id)
            continue
        row = stats.get(member_id)
        if row is None:  # a member from before every member had its stats row
            row = stats[member_id] = await stats_row(session, member_id)
        if _newer_balance(row, e):
            changed.add(member_id)
        await _settlement(session, member_id, e)
    for member_id in sorted(changed):
        member_events.activity_changed(session, member_id)
    if unknown:
        log.warning("ledger entries for unknown members skipped", subject="entries.posted", entries=len(unknown),
                    first_entry_ids=unknown[:5])


def _newer_balance(stats: CustomerStats, entry: events.EntryPosted) -> bool:
    """Takes the entry's balance if it is newer than the one stored for its asset; says whether it did."""
    balance_column, watermark_column = BALANCE_COLUMNS[entry.asset]
    entry_id = _id(entry.entry_id) or 0
    if entry_id <= getattr(stats, watermark_column):
        return False
    setattr(stats, balance_column, entry.balance_after)
    setattr(stats, watermark_column, entry_id)
    return True


async def _settlement(session: AsyncSession, member_id: int, entry: events.EntryPosted) -> None:
    """A manual points or red-packet settlement in a mall makes it an interaction mall."""
    mall_id = _id(entry.mall_id)
    is_settlement = entry.kind == "ENTRY_KIND_ADJUST" and not entry.order_id
    if mall_id is not None and is_settlement and entry.asset in SETTLEMENT_KINDS:
        if await MemberRepository(session).add_interaction(member_id, mall_id, SETTLEMENT_KINDS[entry.asset],
                                                           _time(entry.create_time)):
            member_events.activity_changed(session, member_id)


async def order_recorded(session: AsyncSession, event: Message) -> None:
    assert isinstance(event, events.OrderRecorded)
    member = await _member(session, event.member_id, "order.recorded")
    order_id = _id(event.order_id)
    if member is None or order_id is None or await session.get(MemberOrder, order_id) is not None:
        return
    at = _time(event.occur_time)
    session.add(MemberOrder(order_id=order_id, customer_id=member.id, mall_id=_id(event.mall_id),
                            store_id=_id(event.store_id), channel=event.channel, amount_fen=event.amount,
                            paid_amount_fen=event.paid_amount, refunded_amount_fen=0, fully_refunded=False,
                            occurred_at=at))
    stats = await stats_row(session, member.id)
    stats.spend_count += 1
    stats.spend_total_fen += event.amount
    stats.first_spend_at = at if stats.first_spend_at is None else min(aware(stats.first_spend_at), at)
    stats.last_spend_at = at if stats.last_spend_at is None else max(aware(stats.last_spend_at), at)
    mall_id = _id(event.mall_id)
    if mall_id is not None and mall_id != member.registration_mall_id:
        await MemberRepository(session).add_interaction(member.id, mall_id, "consume", at)
    timeline.record(session, member.id, "order", "system", order_id=event.order_id, mall_id=event.mall_id,
                    store_id=event.store_id, channel=event.channel, amount_fen=event.amount,
                    paid_amount_fen=event.paid_amount, points_earned=event.points_earned)
    await rules.apply_spend(session, member, event.amount, at)
    await _fill_from_order(session, member, event)
    member_events.activity_changed(session, member.id, new_order_ids=[order_id])


async def _fill_from_order(session: AsyncSession, member: Customer, event: events.OrderRecorded) -> None:
    """Fills a missing real name and phone from the buyer the order names, as an attribute change by "system"."""
    values: dict[str, str] = {}
    if not member.real_name and event.buyer_real_name:
        values["real_name"] = event.buyer_real_name
    if not member.phone and event.buyer_phone:
        repo = MemberRepository(session)
        if await repo.id_by(Customer.phone, event.buyer_phone) is None:
            values["phone"] = event.buyer_phone
        else:
            log.info("order's buyer phone belongs to another customer; not filled", member_id=member.id,
                     order_id=event.order_id)
    await change_attributes(session, member, values, "system", utcnow(), order_id=event.order_id)


async def order_refunded(session: AsyncSession, event: Message) -> None:
    assert isinstance(event, events.OrderRefunded)
    member = await _member(session, event.member_id, "order.refunded")
    order_id = _id(event.order_id)
    if member is None or order_id is None:
        return
    order = await session.get(MemberOrder, order_id)
    stats = await stats_row(session, member.id)
    if order is not None:
        order.refunded_amount_fen = event.total_refunded_amount
        if event.fully_refunded and not order.fully_refunded:
            order.fully_refunded = True
            stats.spend_count = max(0, stats.spend_count - 1)
    stats.spend_total_fen = max(0, stats.spend_total_fen - event.refund_amount)
    timeline.record(session, member.id, "refund", "system", order_id=event.order_id, refund_id=event.refund_id,
                    refund_amount_fen=event.refund_amount, points_reversed=event.points_reversed,
                    points_debt=event.points_debt)
    await rules.apply_spend(session, member, -event.refund_amount, _time(event.refund_time))
    member_events.activity_changed(session, member.id, orders_changed=True)


async def voucher_redeemed(session: AsyncSession, event: Message) -> None:
    assert isinstance(event, events.VoucherRedeemed)
    member = await _member(session, event.member_id, "voucher.redeemed")
    if member is None:
        return
    at = _time(event.occur_time)
    timeline.record(session, member.id, "voucher_redeemed", "system", voucher_code=event.voucher_code,
                    mall_id=event.mall_id, store_id=event.store_id, points_cost=event.points_cost)
    mall_id = _id(event.mall_id)
    if mall_id is not None and mall_id != member.registration_mall_id:
        if await MemberRepository(session).add_interaction(member.id, mall_id, "redeem_voucher", at):
            member_events.activity_changed(session, member.id)
