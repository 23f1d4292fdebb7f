"""The member events the customer service publishes (through the outbox, in the caller's transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from crowdpack.customer.v1 import member_pb2
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.bulk import Adds
from services.common.clock import utcnow
from services.common.outbox import add_event
from services.common.validation import EPOCH, aware, to_timestamp
from services.customer.member_rows import MemberRow, StatsRow
from services.customer.models import Customer, OutboxEvent

REVIEW_NAMES: dict[int, str] = {
    member_pb2.REVIEW_STATUS_PENDING: "pending", member_pb2.REVIEW_STATUS_APPROVED: "approved",
    member_pb2.REVIEW_STATUS_REJECTED: "rejected"}


def created(session: Adds, c: Customer) -> None:
    add_event(session, OutboxEvent, events.MemberCreated(
        member_id=str(c.id), phone=c.phone or "", email=c.email or "", create_time=to_timestamp(c.created_at),
        registration_mall_id=str(c.registration_mall_id or ""), level=c.level, virtual=c.virtual,
        store_member=c.store_member))


def status_changed(session: Adds, c: Customer) -> None:
    add_event(session, OutboxEvent, events.MemberStatusChanged(
        member_id=str(c.id), disabled=c.disabled, deleted=c.deleted_at is not None, virtual=c.virtual,
        review_status=REVIEW_NAMES.get(c.review_status, ""), change_time=to_timestamp(utcnow()),
        store_member=c.store_member))


def updated(session: Adds, c: Customer | MemberRow, fields: Iterable[str], operator_id: str) -> None:
    add_event(session, OutboxEvent, events.MemberUpdated(
        member_id=str(c.id), changed_fields=sorted(fields), phone=c.phone or "", email=c.email or "",
        operator_id=operator_id, change_time=to_timestamp(utcnow()), store_member=c.store_member))


def fields_changed(session: Adds, customer_id: int, fields: Iterable[str], operator_id: str) -> None:
    """MemberUpdated for a change made in bulk (no row at hand), e.g. a group move."""
    add_event(session, OutboxEvent, events.MemberUpdated(
        member_id=str(customer_id), changed_fields=sorted(fields), operator_id=operator_id,
        change_time=to_timestamp(utcnow())))


def card_opened(session: Adds, c: Customer) -> None:
    add_event(session, OutboxEvent, events.MemberCardOpened(
        member_id=str(c.id), card_number=c.card_number or "", mall_id=str(c.card_open_mall_id or ""),
        channel=member_pb2.OpenChannel.Name(c.card_open_channel), open_time=to_timestamp(c.card_open_time)))


def level_changed(session: Adds, c: Customer | MemberRow, from_level: int, kind: str, reason: str,
                  operator_id: str) -> None:
    add_event(session, OutboxEvent, events.MemberLevelChanged(
        member_id=str(c.id), from_level=from_level, to_level=c.level, kind=kind, reason=reason,
        operator_id=operator_id, change_time=to_timestamp(utcnow())))


ACTIVITY_MEMBERS = 10_000  # members per MembersActivityChanged
_SECOND = timedelta(seconds=1)


def _seconds(at: datetime | None) -> int:
    """Whole seconds since the epoch (floored, as the crowd index's loader reads a stored time), 0 for none."""
    return 0 if at is None else (aware(at) - EPOCH) // _SECOND


def activity_events(members: Sequence[tuple[MemberRow, StatsRow]], new_order_ids: Sequence[int],
                    orders_changed: bool, interactions: Sequence[tuple[int, int]] = ()
                    ) -> list[events.MembersActivityChanged]:
    """The events of a batch changing these members' spend, balances or interaction malls (for ``add_events``):
    one per ``ACTIVITY_MEMBERS`` members (ascending), each with what the batch left in their columns the
    projection may change; the new orders, a refund's mark and the added (member, mall) ``interactions`` with
    the first."""
    now = to_timestamp(utcnow())
    out = []
    for start in range(0, len(members), ACTIVITY_MEMBERS):
        part = members[start:start + ACTIVITY_MEMBERS]
        first = start == 0
        out.append(events.MembersActivityChanged(
            member_ids=[str(m.id) for m, _ in part],
            new_order_ids=[str(o) for o in new_order_ids] if first else [],
            orders_changed=orders_changed and first, change_time=now,
            points_balances=[s.points_balance for _, s in part],
            red_packet_balances_fen=[s.red_packet_balance_fen for _, s in part],
            online_counts=[s.online_count for _, s in part],
            online_totals_fen=[s.online_total_fen for _, s in part],
            online_last_seconds=[_seconds(s.online_last_at) for _, s in part],
            levels=[m.level for m, _ in part],
            level_expire_seconds=[_seconds(m.level_expires_at) for m, _ in part],
            store_members=[m.store_member for m, _ in part],
            interaction_members=[m for m, _ in interactions] if first else [],
            interaction_malls=[mall for _, mall in interactions] if first else []))
    return out
