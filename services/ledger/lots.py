"""Points lots: each points credit opens a lot, debits take from the oldest lots first, expiry closes lots."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.bulk import insert_rows, update_rows
from services.common.chunks import IN_LIST, chunks
from services.common.mapped import table_of
from services.ledger.models import PointsLot
from services.ledger.postings import Posted
from services.ledger.rules import Rule, effective_rules

LOTS = table_of(PointsLot)
LOT_COLUMNS = ("account_id", "entry_id", "amount", "remaining", "earned_at", "expires_at")
OPEN_LOTS_OF = (select(LOTS.c.id, LOTS.c.account_id, LOTS.c.remaining)
                .where(LOTS.c.account_id.in_(bindparam("accounts", expanding=True)), LOTS.c.remaining > 0)
                .order_by(LOTS.c.account_id, LOTS.c.id))


@dataclass
class Lot:
    """A points lot: what is left of one credit, taken oldest first."""

    id: int | None  # None until inserted
    account_id: int
    remaining: int
    amount: int
    entry: Posted | None = None  # new lots: the entry that opened it
    expires_at: datetime | None = None
    touched: bool = False


def move_lots(session: Session, pending: list[Posted], rules: dict[str, Rule], now: datetime) -> None:
    """Moves the points lots of ``pending``'s points entries: a credit opens a lot (expiring as its mall's rule
    says), a debit takes from the oldest lots first, an expiry closes exactly the lots it names. ``rules`` (mall id
    -> rule) is read further as needed."""
    points = [e for e in pending if e.asset == pb.ASSET_POINTS]
    if not points:
        return
    spenders = sorted({e.account_id for e in points if e.posting.amount < 0 and e.posting.expired_lots is None})
    queues: dict[int, deque[Lot]] = {}
    for chunk in chunks(spenders, IN_LIST):
        for r in session.execute(OPEN_LOTS_OF, {"accounts": chunk}):
            queues.setdefault(r.account_id, deque()).append(
                Lot(id=r.id, account_id=r.account_id, remaining=r.remaining, amount=r.remaining))
    missing = {e.posting.mall_id for e in points if e.posting.amount > 0} - rules.keys()
    if missing:
        rules.update(effective_rules(session, missing))
    changed: list[Lot] = []
    opened: list[Lot] = []
    for e in points:
        p = e.posting
        queue = queues.setdefault(e.account_id, deque())
        if p.amount > 0:
            days = rules[p.mall_id].expiry_days
            lot = Lot(id=None, account_id=e.account_id, remaining=p.amount, amount=p.amount, entry=e,
                       expires_at=now + timedelta(days=days) if days else None)
            queue.append(lot)
            opened.append(lot)
        elif p.expired_lots is not None:
            closing = p.expired_lots
            changed += [Lot(id=i, account_id=e.account_id, remaining=0, amount=left)
                        for i, left in closing.items()]
            queues[e.account_id] = deque(lot for lot in queue if lot.id not in closing)
        else:
            need = -p.amount
            while need > 0:
                if not queue:
                    raise RuntimeError(f"points lots of account {e.account_id} do not cover its balance; "
                                       "run 'crowdpack ledger verify'")
                lot = queue[0]
                used = min(need, lot.remaining)
                lot.remaining -= used
                need -= used
                if lot.id is not None and not lot.touched:
                    lot.touched = True
                    changed.append(lot)
                if lot.remaining == 0:
                    queue.popleft()
    conn = session.connection()
    update_rows(conn, LOTS, ("remaining",), ("id",), [(lot.remaining, lot.id) for lot in changed])
    insert_rows(conn, LOTS, LOT_COLUMNS, [
        (lot.account_id, lot.entry.id,  # type: ignore[union-attr]  # a new lot always has its entry
         lot.amount, lot.remaining, now, lot.expires_at)
        for lot in opened])
