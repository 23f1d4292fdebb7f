"""Checks the whole ledger: every balance equals the sum of its entries, and everything else that must agree.

``crowdpack ledger verify`` runs it and exits non-zero on any problem. Each check is one
aggregate query, so the database does the work; at most ``LIMIT`` problems per check are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.db import Database

LIMIT = 100
POINTS, REVERSAL, EARN = pb.ASSET_POINTS, pb.ENTRY_KIND_REVERSAL, pb.ENTRY_KIND_EARN


def _asset(value: int) -> str:
    return pb.Asset.Name(value) if value in pb.Asset.values() else str(value)


# (what is wrong, SQL returning the offending rows, how to describe a row)
CHECKS: list[tuple[str, str, str]] = [
    ("a balance or points debt below zero",
     "SELECT id, member_id, asset, balance, debt FROM account WHERE balance < 0 OR debt < 0 ORDER BY id",
     "account {id} (member {member_id}, {asset}): balance {balance}, debt {debt}"),
    ("a balance that is not the sum of its entries",
     "SELECT a.id, a.member_id, a.asset, a.balance, COALESCE(s.total, 0) AS total FROM account a "
     "LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM journal_entry GROUP BY account_id) s "
     "ON s.account_id = a.id WHERE a.balance <> COALESCE(s.total, 0) ORDER BY a.id",
     "account {id} (member {member_id}, {asset}): balance {balance} but its entries sum to {total}"),
    ("an entry whose balance_after is not the running sum of its account",
     "SELECT id, account_id, balance_after, running FROM (SELECT id, account_id, balance_after, "
     "SUM(amount) OVER (PARTITION BY account_id ORDER BY id) AS running FROM journal_entry) t "
     "WHERE running <> balance_after ORDER BY id",
     "entry {id} of account {account_id}: balance_after {balance_after} but the running sum is {running}"),
    ("a points balance that is not what is left of its lots",
     f"SELECT a.id, a.member_id, a.balance, COALESCE(l.remaining, 0) AS remaining FROM account a "
     f"LEFT JOIN (SELECT account_id, SUM(remaining) AS remaining FROM points_lot GROUP BY account_id) l "
     f"ON l.account_id = a.id WHERE a.asset = {POINTS} AND a.balance <> COALESCE(l.remaining, 0) ORDER BY a.id",
     "account {id} (member {member_id}, ASSET_POINTS): balance {balance} but its lots hold {remaining}"),
    ("points lots on an account that does not hold points",
     f"SELECT l.id, l.account_id FROM points_lot l JOIN account a ON a.id = l.account_id "
     f"WHERE a.asset <> {POINTS} ORDER BY l.id",
     "lot {id} on account {account_id}"),
    ("a reversal that does not mirror the entry it reverses",
     f"SELECT r.id, r.reversal_of_id FROM journal_entry r LEFT JOIN journal_entry o ON o.id = r.reversal_of_id "
     f"WHERE r.kind = {REVERSAL} AND (o.id IS NULL OR o.account_id <> r.account_id OR o.amount <> -r.amount) "
     f"ORDER BY r.id",
     "reversal {id} of entry {reversal_of_id}"),
    ("an order whose refunds do not add up",
     "SELECT o.id, o.refunded_amount, o.points_reversed, COALESCE(r.amount, 0) AS refunds, "
     "COALESCE(r.points, 0) AS points FROM order_record o LEFT JOIN (SELECT order_id, SUM(amount) AS amount, "
     "SUM(points_reversed) AS points FROM order_refund GROUP BY order_id) r ON r.order_id = o.id "
     "WHERE o.refunded_amount <> COALESCE(r.amount, 0) OR o.points_reversed <> COALESCE(r.points, 0) ORDER BY o.id",
     "order {id}: refunded {refunded_amount} and {points_reversed} points, its refunds say {refunds} and {points}"),
    ("an order whose earned points were not posted",
     f"SELECT o.id, o.points_earned, COALESCE(e.total, 0) AS posted FROM order_record o LEFT JOIN "
     f"(SELECT order_id, SUM(amount) AS total FROM journal_entry WHERE kind = {EARN} AND order_id IS NOT NULL "
     f"GROUP BY order_id) e ON e.order_id = o.id WHERE o.points_earned <> COALESCE(e.total, 0) ORDER BY o.id",
     "order {id}: earned {points_earned} points but {posted} were posted"),
]

COUNTS = {"accounts": "SELECT count(*) FROM account", "entries": "SELECT count(*) FROM journal_entry",
          "lots": "SELECT count(*) FROM points_lot", "orders": "SELECT count(*) FROM order_record"}


@dataclass
class VerifyReport:
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(db: Database) -> VerifyReport:
    report = VerifyReport()
    async with db.read() as session:
        for name, sql in COUNTS.items():
            report.counts[name] = (await session.execute(text(sql))).scalar_one()
        for what, sql, describe in CHECKS:
            rows = (await session.execute(text(f"{sql} LIMIT {LIMIT}"))).mappings().all()
            for row in rows:
                values = dict(row)
                if "asset" in values:
                    values["asset"] = _asset(values["asset"])
                report.problems.append(f"{what}: {describe.format(**values)}")
    return report
