"""The customer service's projection of the ledger, kept from its events over NATS.

- ``ledger.entry.posted``: balances per asset (newest entry wins, so a late redelivery cannot
  roll a balance back); a manual points or red-packet settlement in a mall relates the member
  to that mall; a manual adjustment (points, balance, red packet) is a timeline entry.
  ``ledger.entries.posted`` (a batch posting's entries, up to 1,000) does the same for each entry,
  with one read of the members and their stats rows for the whole event.
- ``ledger.order.recorded``: spend count, total, first and last time; the mall becomes an
  interaction mall; cumulative spend may upgrade the level; the order is kept for crowd packages;
  a member without a real name or phone takes the buyer's from the order (a phone another
  customer already holds is left alone).
- ``ledger.order.refunded``: the refunded amount leaves the totals (a fully refunded order no
  longer counts) and the level spend.
- ``ledger.voucher.redeemed``: the mall where a voucher was redeemed becomes an interaction mall.

The consumer hands a whole fetched batch to ``apply_sync`` (its ``sync_batch_handler``: one
``run_sync_write``, so on SQLite the batch runs on the writer thread in one hop), inside the
transaction that also records the messages' ids, so each event applies exactly once. It reads
what the batch needs once, one Core select per table and only the columns it uses (the members,
their stats rows and interaction malls, the orders the batch names, the level rules, which buyer
phones are taken or belong to store staff), as plain rows (``member_rows``; no mapped object is
loaded or dirty-tracked). It applies the events in stream order on those rows with nothing read or
written in between, stages the new rows (``Staged``: bulk INSERTs at the end) and writes back only
the columns that moved (bulk UPDATEs of the members, stats rows and refunded orders), then publishes
one ``members.activity_changed`` naming every member the batch changed, with what it left in their
columns the crowd index keeps (balances, online spend, level, store-member flag) and the interaction
malls it added, and every new order (the crowd index follows it without reading the members back: a
batch is one event to relay and follow, not one per member).
The per-subject handlers are ``apply`` on a batch of one. Events about unknown members are
logged and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as events
from services.common.bulk import Staged, add_row, insert_rows, update_rows
from services.common.chunks import IN_LIST, chunks, padded
from services.common.clock import utcnow
from services.common.events import ENTRIES_POSTED, ENTRY_POSTED, ORDER_RECORDED, ORDER_REFUNDED, VOUCHER_REDEEMED
from services.common.logs import get_logger
from services.common.mapped import table_of
from services.common.outbox import add_events
from services.common.validation import aware
from services.customer import member_events, timeline
from services.customer.levels import rules
from services.customer.levels.models import Level, LevelChange
from services.customer.member_changes import change_attributes_staged
from services.customer.member_rows import (
    MemberRow,
    StatsRow,
    in_list,
    insert_stats,
    read_members,
    read_stats,
    write_members,
    write_stats,
)
from services.customer.members.repository import MEMBER
from services.customer.models import Customer, CustomerInteraction, MemberOrder, OutboxEvent, TimelineEntry
from services.customer.organization.models import Staff
from services.customer.stats import count_order, count_refund
from services.customer.store_members import STORE_STAFF

log = get_logger(__name__)

BALANCE_COLUMNS = {"ASSET_POINTS": ("points_balance", "points_entry_id"),
                   "ASSET_RED_PACKET": ("red_packet_balance_fen", "red_packet_entry_id"),
                   "ASSET_BALANCE": ("stored_balance_fen", "stored_entry_id")}
SETTLEMENT_KINDS = {"ASSET_POINTS": "settle_points", "ASSET_RED_PACKET": "settle_red_packet"}
# What a batch reads (built once; the ids are given at execution).
_interaction, _order = table_of(CustomerInteraction), table_of(MemberOrder)
_READ_INTERACTIONS = select(_interaction.c.customer_id, _interaction.c.mall_id).where(
    in_list(_interaction.c.customer_id))
_READ_ORDERS = select(_order.c.order_id, _order.c.channel, _order.c.refunded_amount_fen,
                      _order.c.fully_refunded).where(in_list(_order.c.order_id))
_customer, _staff = table_of(Customer), table_of(Staff)
_TAKEN_PHONES = select(_customer.c.phone).where(in_list(_customer.c.phone))
_STAFF_PHONES = select(_staff.c.phone).where(in_list(_staff.c.phone), _staff.c.role == STORE_STAFF,
                                             _staff.c.disabled.is_(False))
# A member order's columns, as a new one is inserted.
ORDER_COLUMNS = ("order_id", "customer_id", "mall_id", "store_id", "channel", "amount_fen", "paid_amount_fen",
                 "occurred_at", "refunded_amount_fen", "fully_refunded")


def _id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _time(ts) -> datetime:
    return aware(ts.ToDatetime())


def _member_ids(event: Message) -> Iterator[str]:
    if isinstance(event, events.EntriesPosted):
        yield from (e.member_id for e in event.entries)
    else:
        yield event.member_id  # type: ignore[attr-defined]  # every other ledger event names one member


@dataclass(slots=True)
class _Order:
    """What a refund needs of a member order; a new order (``new``: its other columns) is inserted at the end."""

    channel: str
    refunded_amount_fen: int
    fully_refunded: bool
    new: tuple[Any, ...] | None = None  # ORDER_COLUMNS but the last two
    refunded: bool = False  # an order read from the database that a refund of the batch changed


@dataclass
class Batch:
    """What a batch of ledger events reads, read once for all of them, and what it changed.

    The rows are plain (``member_rows``): read with one Core select per table, written back at the end
    as bulk UPDATEs of the rows whose values changed.
    """

    members: dict[int, MemberRow]
    stats: dict[int, StatsRow]
    interactions: set[tuple[int, int]]
    orders: dict[int, _Order]
    levels: Sequence[Level]
    taken_phones: set[str]  # buyer phones some customer holds (filled ones join)
    staff_phones: set[str]  # the other buyer phones that belong to active store staff
    new: Staged = field(default_factory=Staged)  # the rows the batch adds, written together at its end
    changed: set[int] = field(default_factory=set)  # the members whose activity the batch changed
    new_order_ids: list[int] = field(default_factory=list)
    orders_changed: bool = False  # a refund changed an order recorded before
    unknown: list[str] = field(default_factory=list)
    added_interactions: list[tuple[int, int]] = field(default_factory=list)  # (member, mall), as added
    members_read: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # their written columns, as read
    stats_read: dict[int, tuple[Any, ...]] = field(default_factory=dict)

    @classmethod
    def read(cls, session: Session, items: Sequence[tuple[str, Message]]) -> Batch:
        conn = session.connection()
        member_ids = sorted({n for _, event in items for m in _member_ids(event) if (n := _id(m)) is not None})
        order_ids = sorted({n for subject, event in items if subject in (ORDER_RECORDED, ORDER_REFUNDED)
                            and (n := _id(event.order_id)) is not None})  # type: ignore[attr-defined]  # orders
        members: dict[int, MemberRow] = {}
        stats: dict[int, StatsRow] = {}
        interactions: set[tuple[int, int]] = set()
        for chunk in chunks(member_ids, IN_LIST):
            # Locked (PostgreSQL) in the order UpdateMember and the level changes lock them, member then stats:
            # the batch writes both rows back at the end, so nobody may change them in between.
            members.update(read_members(conn, chunk, MEMBER))
            stats.update(read_stats(conn, chunk))
            interactions.update((customer_id, mall_id) for customer_id, mall_id in
                                conn.execute(_READ_INTERACTIONS, {"values": padded(chunk)}).all())
        orders: dict[int, _Order] = {}
        for chunk in chunks(order_ids, IN_LIST):
            orders.update((row[0], _Order(*row[1:]))
                          for row in conn.execute(_READ_ORDERS, {"values": padded(chunk)}).all())
        missing = [StatsRow(member_id) for member_id in members if member_id not in stats]
        if missing:  # members from before every member had its stats row
            insert_stats(conn, missing)
            stats.update((row.customer_id, row) for row in missing)
        recorded = [event for subject, event in items if subject == ORDER_RECORDED]
        levels = session.scalars(select(Level).order_by(Level.number)).all() if recorded else ()
        phones = sorted({e.buyer_phone for e in recorded if e.buyer_phone})  # type: ignore[attr-defined]  # recorded
        taken: set[str] = set()
        for chunk in chunks(phones, IN_LIST):
            taken.update(conn.scalars(_TAKEN_PHONES, {"values": padded(chunk)}))
        staff: set[str] = set()
        for chunk in chunks(sorted(set(phones) - taken), IN_LIST):
            staff.update(conn.scalars(_STAFF_PHONES, {"values": padded(chunk)}))
        return cls(members, stats, interactions, orders, levels, taken, staff,
                   members_read={k: m.written() for k, m in members.items()},
                   stats_read={k: s.values() for k, s in stats.items()})

    def member(self, member_id: str, what: str) -> MemberRow | None:
        number = _id(member_id)
        member = self.members.get(number) if number is not None else None
        if member is None:
            self.unknown.append(f"{what} for member {member_id!r}")
        return member

    def add_interaction(self, member_id: int, mall_id: int, kind: str, at: datetime) -> bool:
        """Relates a member to a mall once; returns True when the relation is new."""
        if (member_id, mall_id) in self.interactions:
            return False
        self.interactions.add((member_id, mall_id))
        self.added_interactions.append((member_id, mall_id))
        add_row(self.new, CustomerInteraction, customer_id=member_id, mall_id=mall_id, first_kind=kind, first_at=at)
        return True

    def write(self, conn: Connection) -> None:
        """The batch's new rows (in bulk INSERTs, each table's in the order added) and the rows it changed (bulk
        UPDATEs of the members, stats rows and orders whose values moved)."""
        new_orders = [(*o.new, o.refunded_amount_fen, o.fully_refunded) for o in self.orders.values()
                      if o.new is not None]
        insert_rows(conn, table_of(MemberOrder), ORDER_COLUMNS, new_orders)
        self.new.write(conn, (TimelineEntry, CustomerInteraction, LevelChange, OutboxEvent))
        write_stats(conn, [(s, self.stats_read[k]) for k, s in self.stats.items()])
        write_members(conn, [(m, self.members_read[k]) for k, m in self.members.items()])
        refunded = [(o.refunded_amount_fen, o.fully_refunded, k) for k, o in self.orders.items() if o.refunded]
        update_rows(conn, table_of(MemberOrder), ("refunded_amount_fen", "fully_refunded"), ("order_id",), refunded)


async def apply(session: AsyncSession, items: Sequence[tuple[str, Message]]) -> None:
    """Applies ledger events (subject, event), in order, in the caller's transaction."""
    await session.run_sync(apply_sync, items)


def apply_sync(session: Session, items: Sequence[tuple[str, Message]]) -> None:
    """``apply`` on a synchronous session (the consumer's ``sync_batch_handler``: on SQLite the whole batch runs
    on the writer thread in one hop)."""
    session.flush()  # whatever the caller left pending goes first (the batch writes on the connection)
    batch = Batch.read(session, items)
    for subject, event in items:
        APPLY[subject](batch, event)
    conn = session.connection()
    batch.write(conn)
    if batch.changed:
        add_events(conn, OutboxEvent, member_events.activity_events(
            [(batch.members[m], batch.stats[m]) for m in sorted(batch.changed)], batch.new_order_ids,
            batch.orders_changed, batch.added_interactions))
    if batch.unknown:
        log.warning("ledger events for unknown members skipped", events=len(batch.unknown),
                    first=batch.unknown[:5])


def _entry_posted(batch: Batch, event: Message) -> None:
    assert isinstance(event, events.EntryPosted)
    if event.asset not in BALANCE_COLUMNS:
        return
    member = batch.member(event.member_id, f"entry {event.entry_id}")
    if member is None:
        return
    if _newer_balance(batch.stats[member.id], event):
        batch.changed.add(member.id)
    _settlement(batch, member.id, event)
    if event.kind == "ENTRY_KIND_ADJUST" and not event.order_id:
        timeline.adjustment(batch.new, member.id, event)


def _entries_posted(batch: Batch, event: Message) -> None:
    """A batch posting's entries, each applied as ``entry_posted`` applies one."""
    assert isinstance(event, events.EntriesPosted)
    for entry in event.entries:
        _entry_posted(batch, entry)


def _newer_balance(stats: StatsRow, entry: events.EntryPosted) -> bool:
    """Takes the entry's balance if it is newer than the one stored for its asset; says whether it did."""
    balance_column, watermark_column = BALANCE_COLUMNS[entry.asset]
    entry_id = _id(entry.entry_id) or 0
    if entry_id <= getattr(stats, watermark_column):
        return False
    setattr(stats, balance_column, entry.balance_after)
    setattr(stats, watermark_column, entry_id)
    return True


def _settlement(batch: Batch, member_id: int, entry: events.EntryPosted) -> None:
    """A manual points or red-packet settlement in a mall makes it an interaction mall."""
    mall_id = _id(entry.mall_id)
    is_settlement = entry.kind == "ENTRY_KIND_ADJUST" and not entry.order_id
    if mall_id is not None and is_settlement and entry.asset in SETTLEMENT_KINDS:
        if batch.add_interaction(member_id, mall_id, SETTLEMENT_KINDS[entry.asset], _time(entry.create_time)):
            batch.changed.add(member_id)


def _order_recorded(batch: Batch, event: Message) -> None:
    assert isinstance(event, events.OrderRecorded)
    new = batch.new
    member = batch.member(event.member_id, f"order {event.order_id}")
    order_id = _id(event.order_id)
    if member is None or order_id is None or order_id in batch.orders:
        return
    at = _time(event.occur_time)
    mall_id = _id(event.mall_id)
    batch.orders[order_id] = _Order(event.channel, 0, False, new=(
        order_id, member.id, mall_id, _id(event.store_id), event.channel, event.amount, event.paid_amount, at))
    stats = batch.stats[member.id]
    stats.spend_count += 1
    stats.spend_total_fen += event.amount
    stats.first_spend_at = at if stats.first_spend_at is None else min(aware(stats.first_spend_at), at)
    stats.last_spend_at = at if stats.last_spend_at is None else max(aware(stats.last_spend_at), at)
    count_order(stats, event.channel, event.amount, at)
    if mall_id is not None and mall_id != member.registration_mall_id:
        batch.add_interaction(member.id, mall_id, "consume", at)
    timeline.record(new, member.id, "order", "system", order_id=event.order_id, mall_id=event.mall_id,
                    store_id=event.store_id, channel=event.channel, amount_fen=event.amount,
                    paid_amount_fen=event.paid_amount, points_earned=event.points_earned)
    rules.count_spend(new, member, batch.stats[member.id], event.amount, at, batch.levels)
    _fill_from_order(batch, member, event)
    batch.changed.add(member.id)
    batch.new_order_ids.append(order_id)


def _fill_from_order(batch: Batch, member: MemberRow, event: events.OrderRecorded) -> None:
    """Fills a missing real name and phone from the buyer the order names, as an attribute change by "system"."""
    values: dict[str, str] = {}
    if not member.real_name and event.buyer_real_name:
        values["real_name"] = event.buyer_real_name
    if not member.phone and event.buyer_phone:
        if event.buyer_phone not in batch.taken_phones:
            values["phone"] = event.buyer_phone
            batch.taken_phones.add(event.buyer_phone)
        else:
            log.info("order's buyer phone belongs to another customer; not filled", member_id=member.id,
                     order_id=event.order_id)
    if values:
        change_attributes_staged(batch.new, member, values, "system", utcnow(), batch.staff_phones,
                                 order_id=event.order_id)


def _order_refunded(batch: Batch, event: Message) -> None:
    assert isinstance(event, events.OrderRefunded)
    member = batch.member(event.member_id, f"refund {event.refund_id}")
    order_id = _id(event.order_id)
    if member is None or order_id is None:
        return
    order = batch.orders.get(order_id)
    stats = batch.stats[member.id]
    if order is not None:
        order.refunded_amount_fen = event.total_refunded_amount
        order.refunded = order.new is None
        now_full = event.fully_refunded and not order.fully_refunded
        if now_full:
            order.fully_refunded = True
            stats.spend_count = max(0, stats.spend_count - 1)
        count_refund(stats, order.channel, event.refund_amount, now_full)
    stats.spend_total_fen = max(0, stats.spend_total_fen - event.refund_amount)
    timeline.record(batch.new, member.id, "refund", "system", order_id=event.order_id, refund_id=event.refund_id,
                    refund_amount_fen=event.refund_amount, points_reversed=event.points_reversed,
                    points_debt=event.points_debt)
    rules.count_spend(batch.new, member, stats, -event.refund_amount, _time(event.refund_time), batch.levels)
    batch.changed.add(member.id)
    batch.orders_changed = batch.orders_changed or order is not None and order.new is None


def _voucher_redeemed(batch: Batch, event: Message) -> None:
    assert isinstance(event, events.VoucherRedeemed)
    member = batch.member(event.member_id, f"voucher {event.redemption_id}")
    if member is None:
        return
    at = _time(event.occur_time)
    timeline.record(batch.new, member.id, "voucher_redeemed", "system", voucher_code=event.voucher_code,
                    mall_id=event.mall_id, store_id=event.store_id, points_cost=event.points_cost)
    mall_id = _id(event.mall_id)
    if mall_id is not None and mall_id != member.registration_mall_id:
        if batch.add_interaction(member.id, mall_id, "redeem_voucher", at):
            batch.changed.add(member.id)


APPLY = {ENTRY_POSTED: _entry_posted, ENTRIES_POSTED: _entries_posted, ORDER_RECORDED: _order_recorded,
         ORDER_REFUNDED: _order_refunded, VOUCHER_REDEEMED: _voucher_redeemed}


# One event at a time (the consumer's per-message handlers): a batch of one.
async def entry_posted(session: AsyncSession, event: Message) -> None:
    await apply(session, [(ENTRY_POSTED, event)])


async def entries_posted(session: AsyncSession, event: Message) -> None:
    await apply(session, [(ENTRIES_POSTED, event)])


async def order_recorded(session: AsyncSession, event: Message) -> None:
    await apply(session, [(ORDER_RECORDED, event)])


async def order_refunded(session: AsyncSession, event: Message) -> None:
    await apply(session, [(ORDER_REFUNDED, event)])


async def voucher_redeemed(session: AsyncSession, event: Message) -> None:
    await apply(session, [(VOUCHER_REDEEMED, event)])
