"""The ``customer_stats`` row every member has: the ledger projection's totals, the level spend, the balances."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.validation import aware
from services.customer.member_rows import StatsRow
from services.customer.models import CustomerStats

ONLINE = "ORDER_CHANNEL_ONLINE"  # every other channel is offline consumption (线下消费)


def empty_stats(customer_id: int) -> CustomerStats:
    return CustomerStats(customer_id=customer_id, points_balance=0, red_packet_balance_fen=0, stored_balance_fen=0,
                         spend_count=0, spend_total_fen=0, level_spend_fen=0, cumulative_spend_fen=0,
                         points_entry_id=0, red_packet_entry_id=0, stored_entry_id=0, online_count=0,
                         online_total_fen=0, offline_count=0, offline_total_fen=0)


def count_order(stats: CustomerStats | StatsRow, channel: str, amount_fen: int, at: datetime) -> None:
    """An order counts in its side's (online or offline) count, total and last time."""
    side = "online" if channel == ONLINE else "offline"
    setattr(stats, f"{side}_count", (getattr(stats, f"{side}_count") or 0) + 1)
    setattr(stats, f"{side}_total_fen", (getattr(stats, f"{side}_total_fen") or 0) + amount_fen)
    last = getattr(stats, f"{side}_last_at")
    setattr(stats, f"{side}_last_at", at if last is None else max(aware(last), at))


def count_refund(stats: CustomerStats | StatsRow, channel: str, refund_fen: int, now_fully_refunded: bool) -> None:
    """A refund leaves its order's side's total; the refund that makes it full takes the order out of the count."""
    side = "online" if channel == ONLINE else "offline"
    setattr(stats, f"{side}_total_fen", max(0, (getattr(stats, f"{side}_total_fen") or 0) - refund_fen))
    if now_fully_refunded:
        setattr(stats, f"{side}_count", max(0, (getattr(stats, f"{side}_count") or 0) - 1))


async def stats_row(session: AsyncSession, customer_id: int) -> CustomerStats:
    """The member's stats row (created if a member from before every member had one lacks it)."""
    row = await session.get(CustomerStats, customer_id)
    if row is None:
        row = empty_stats(customer_id)
        session.add(row)
        await session.flush()
    return row
