"""Member statistics: totals, counts by level and review status, and RFM-style score distributions.

Scores run 1 (low) to 5 (high), from the ledger projection in ``customer_stats``
(documented with examples in docs/member-scores.md):
- recency R, by days since the last spend: none or > 180 → 1, ≤ 180 → 2, ≤ 90 → 3, ≤ 30 → 4, ≤ 7 → 5;
- frequency F, by spend count: 0 → 1, 1 → 2, 2–4 → 3, 5–9 → 4, ≥ 10 → 5;
- spending power M, by total spend: 0 → 1, < ¥500 → 2, < ¥2,000 → 3, < ¥10,000 → 4, ≥ ¥10,000 → 5;
- activity = (R + F + 1) // 2, value = (activity + M + 1) // 2 (halves round up).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from services.common.validation import to_timestamp
from services.customer.members.repository import live_member
from services.customer.models import Customer, CustomerStats

YUAN = 100


def score_columns(now: datetime) -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int]]:
    last = CustomerStats.last_spend_at
    recency = case((last.is_(None), 1), (last >= now - timedelta(days=7), 5), (last >= now - timedelta(days=30), 4),
                   (last >= now - timedelta(days=90), 3), (last >= now - timedelta(days=180), 2), else_=1)
    count = func.coalesce(CustomerStats.spend_count, 0)
    frequency = case((count >= 10, 5), (count >= 5, 4), (count >= 2, 3), (count >= 1, 2), else_=1)
    total = func.coalesce(CustomerStats.spend_total_fen, 0)
    money = case((total >= 10_000 * YUAN, 5), (total >= 2_000 * YUAN, 4), (total >= 500 * YUAN, 3), (total > 0, 2),
                 else_=1)
    activity = (recency + frequency + 1) // 2
    return activity, money, (activity + money + 1) // 2


async def member_statistics(session: AsyncSession, scope: ColumnElement[bool], now: datetime) -> pb.MemberStatistics:
    base = [live_member(), scope, Customer.virtual.is_(False)]
    totals = (await session.execute(select(
        func.count(), func.sum(case((Customer.card_opened, 1), else_=0)),
        func.sum(case((Customer.disabled, 1), else_=0)), func.sum(case((Customer.store_member, 1), else_=0)),
    ).select_from(Customer).where(*base))).one()

    async def counts(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> list[tuple[Any, int]]:
        query = select(column, func.count()).select_from(Customer) \
            .outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id).where(*base) \
            .group_by(column).order_by(column)
        return [(k, n) for k, n in (await session.execute(query)).all()]

    activity, money, value = score_columns(now)
    return pb.MemberStatistics(
        total=totals[0] or 0, card_opened=totals[1] or 0, disabled=totals[2] or 0, store_members=totals[3] or 0,
        by_level=[pb.CountByKey(key=str(k), count=n) for k, n in await counts(Customer.level)],
        by_review_status=[pb.CountByKey(key=member_pb2.ReviewStatus.Name(k), count=n)
                          for k, n in await counts(Customer.review_status)],
        value_distribution=[pb.CountByKey(key=str(int(k)), count=n) for k, n in await counts(value)],
        activity_distribution=[pb.CountByKey(key=str(int(k)), count=n) for k, n in await counts(activity)],
        spending_power_distribution=[pb.CountByKey(key=str(int(k)), count=n) for k, n in await counts(money)],
        compute_time=to_timestamp(now),
    )
