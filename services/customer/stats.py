"""The ``customer_stats`` row every member has: the ledger projection's totals, the level spend, the balances."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.models import CustomerStats


def empty_stats(customer_id: int) -> CustomerStats:
    return CustomerStats(customer_id=customer_id, points_balance=0, red_packet_balance_fen=0, stored_balance_fen=0,
                         spend_count=0, spend_total_fen=0, level_spend_fen=0, cumulative_spend_fen=0,
                         points_entry_id=0, red_packet_entry_id=0, stored_entry_id=0)


async def stats_row(session: AsyncSession, customer_id: int) -> CustomerStats:
    """The member's stats row (created if a member from before every member had one lacks it)."""
    row = await session.get(CustomerStats, customer_id)
    if row is None:
        row = empty_stats(customer_id)
        session.add(row)
        await session.flush()
    return row
