"""Points expiry: what is left of a lot expires ``expiry_days`` after it was earned.

Run by ``crowdpack ledger expire`` (a scheduled job). Each pass takes a bounded number of
accounts with due lots, locks them, and posts one EXPIRE entry per account for exactly what is
left of its due lots, closing them. Spending takes from the oldest lots first, so a point is
either spent or expired, never both; a second run finds nothing left to expire.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.db import Database
from services.ledger.journal import Journal
from services.ledger.models import Account, PointsLot
from services.ledger.postings import Posting

OPERATOR = "system:expire"


@dataclass
class ExpiryReport:
    accounts: int = 0
    lots: int = 0
    points: int = 0


def _due(now: datetime):
    return (PointsLot.remaining > 0, PointsLot.expires_at.is_not(None), PointsLot.expires_at <= now)


async def expire_due(db: Database, now: datetime, *, accounts_per_transaction: int = 500) -> ExpiryReport:
    """Expires every lot due at ``now``; returns what it expired."""
    report = ExpiryReport()
    while True:
        async with db.transaction() as session:
            account_ids = list(await session.scalars(
                select(PointsLot.account_id).where(*_due(now)).group_by(PointsLot.account_id)
                .order_by(PointsLot.account_id).limit(accounts_per_transaction)))
            if not account_ids:
                return report
            members = dict((await session.execute(
                select(Account.id, Account.member_id).where(Account.id.in_(account_ids)))).tuples().all())
            journal = Journal(session, now=now, operator_id=OPERATOR)
            await journal.lock((member, pb.ASSET_POINTS) for member in members.values())
            # Read under the lock: a spend that committed meanwhile has already taken its share.
            lots = (await session.execute(
                select(PointsLot.id, PointsLot.account_id, PointsLot.remaining)
                .where(PointsLot.account_id.in_(account_ids), *_due(now)).order_by(PointsLot.id))).all()
            due: dict[int, dict[int, int]] = {}
            for lot in lots:
                due.setdefault(lot.account_id, {})[lot.id] = lot.remaining
            postings = [
                Posting(member_id=members[account_id], asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_EXPIRE,
                        amount=-sum(closing.values()), expired_lots=closing,
                        note=f"{len(closing)} lot(s) reached their expiry", field="")
                for account_id, closing in sorted(due.items())
            ]
            await journal.post(f"expire:{uuid.uuid4().hex}", postings)
            report.accounts += len(postings)
            report.lots += len(lots)
            report.points += sum(-p.amount for p in postings)
