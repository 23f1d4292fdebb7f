"""A customer database with many members, tags and malls, and a reproducible burst of ledger events about them.

Shared by the freshness benchmark (tests/bench/bench_freshness.py) and the end-to-end test that a
burst applied in batches equals the same burst applied one event at a time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy import insert

from crowdpack.customer.v1 import level_service_pb2 as level_pb2
from crowdpack.events.v1 import ledger_events_pb2 as events
from services.common.db import Database
from services.common.events import ENTRIES_POSTED, ENTRY_POSTED, ORDER_RECORDED, ORDER_REFUNDED, VOUCHER_REDEEMED
from services.customer.classification.models import CustomerGroup, CustomerTag, Tag
from services.customer.levels.models import Level
from services.customer.models import Customer, CustomerInteraction, CustomerStats
from services.customer.organization.models import Mall, Store

FIRST_TAG = 1_001  # above the predefined tags the migrations add
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shape:
    members: int
    tags: int = 1_000
    stores: int = 200
    malls: int = 50
    groups: int = 10


async def seed(db: Database, shape: Shape, seed: int = 5) -> None:
    """Members (some with a real name and phone, some without), their stats rows, tags, groups, interaction malls,
    and automatic levels (so orders upgrade members), written in bulk."""
    rng = random.Random(seed)
    async with db.transaction() as session:
        await session.execute(insert(Mall), [{"id": m, "name": f"mall{m}", "timezone": "Asia/Shanghai",
                                              "created_at": NOW} for m in range(1, shape.malls + 1)])
        await session.execute(insert(Store), [{"id": s, "mall_id": 1 + s % shape.malls, "name": f"store{s}",
                                               "category": "retail", "business_format": "", "floor": "1F", "tags": "",
                                               "created_at": NOW} for s in range(1, shape.stores + 1)])
        await session.execute(insert(Tag), [{"id": FIRST_TAG + t, "name": f"tag{t}", "predefined": False,
                                             "created_at": NOW} for t in range(shape.tags)])
        await session.execute(insert(CustomerGroup), [{"id": g, "name": f"group{g}", "created_at": NOW}
                                                      for g in range(1, shape.groups + 1)])
        await session.execute(insert(Level), [
            {"number": n, "name": f"level{n}", "discount_permille": 1000 - 10 * n,
             "upgrade_mode": level_pb2.UPGRADE_MODE_AUTOMATIC, "upgrade_spend_fen": 40_000 * n, "validity_months": 0,
             "retain_spend_fen": 0, "created_at": NOW, "updated_at": NOW} for n in range(1, 4)])
    for start in range(1, shape.members + 1, 20_000):
        ids = range(start, min(start + 20_000, shape.members + 1))
        customers, stats, tags, interactions = [], [], [], []
        for cid in ids:
            named = cid % 3 != 0
            customers.append({
                "id": cid, "kind": 1, "phone": f"139{cid:08d}" if named else None, "name": f"m{cid}",
                "real_name": f"member{cid}" if named else "", "gender": 1 + cid % 3, "avatar_url": "",
                "registered_at": NOW, "registration_mall_id": 1 + cid % shape.malls, "card_opened": cid % 2 == 0,
                "card_open_channel": 0, "promotion_channel": "", "open_scene": "", "level": 0, "level_frozen": False,
                "group_id": rng.choice([None, *range(1, shape.groups + 1)]), "disabled": cid % 41 == 0,
                "review_status": 2, "store_member": False, "virtual": False, "created_at": NOW, "updated_at": NOW})
            stats.append({"customer_id": cid, "points_balance": 0, "red_packet_balance_fen": 0, "stored_balance_fen": 0,
                          "spend_count": 0, "spend_total_fen": 0, "level_spend_fen": 0, "cumulative_spend_fen": 0,
                          "points_entry_id": 0, "red_packet_entry_id": 0, "stored_entry_id": 0})
            tags += [{"customer_id": cid, "tag_id": FIRST_TAG + t, "created_at": NOW}
                     for t in rng.sample(range(shape.tags), min(shape.tags, rng.randint(0, 4)))]
            interactions += [{"customer_id": cid, "mall_id": m, "first_kind": "consume", "first_at": NOW}
                             for m in rng.sample(range(1, shape.malls + 1), min(shape.malls, rng.randint(0, 2)))]
        async with db.transaction() as session:
            await session.execute(insert(Customer), customers)
            await session.execute(insert(CustomerStats), stats)
            if tags:
                await session.execute(insert(CustomerTag), tags)
            if interactions:
                await session.execute(insert(CustomerInteraction), interactions)


def _ts(moment: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(moment)
    return out


def burst(shape: Shape, n: int, seed: int = 11, *, first_order: int = 1, first_entry: int = 1,
          hot_members: int = 0) -> list[tuple[str, str, Message]]:
    """``n`` ledger events (subject, msg id, event) as the ledger publishes them: orders (about half), refunds of
    earlier orders (partial and full), point and balance postings (some in batches, some late), settlements in
    other malls and voucher redemptions. Unknown members appear too. ``hot_members`` > 0 draws most events from
    that many members (bursts for one member)."""
    rng = random.Random(seed)
    out: list[tuple[str, str, Message]] = []
    orders: list[tuple[events.OrderRecorded, int]] = []  # order, refunded so far
    entry_id = first_entry
    balances: dict[tuple[str, str], int] = {}

    def member() -> str:
        if hot_members and rng.random() < 0.7:
            return str(rng.randint(1, hot_members))
        return str(rng.randint(1, shape.members + 3))  # a few ids past the last member: unknown members

    def entry(mid: str, asset: str, kind: str, amount: int, **kw) -> events.EntryPosted:
        nonlocal entry_id
        entry_id += 1
        key = (mid, asset)
        balances[key] = balances.get(key, 0) + amount
        return events.EntryPosted(entry_id=str(entry_id), member_id=mid, asset=asset, kind=kind, amount=amount,
                                  balance_after=balances[key], create_time=_ts(NOW + timedelta(seconds=entry_id)), **kw)

    while len(out) < n:
        roll = rng.random()
        i = len(out)
        if roll < 0.45:
            order_id = first_order + len(orders)
            mall = rng.randint(1, shape.malls)
            amount = rng.choice([1_000, 5_000, 12_000, 30_000, 80_000])
            order = events.OrderRecorded(
                order_id=str(order_id), member_id=member(), mall_id=str(mall),
                store_id=str(rng.randint(1, shape.stores)),
                channel="ORDER_CHANNEL_POS", amount=amount, paid_amount=amount, points_earned=amount // 100,
                occur_time=_ts(NOW - timedelta(days=rng.randint(0, 90), minutes=rng.randint(0, 1440))),
                buyer_real_name=f"buyer{order_id}" if rng.random() < 0.3 else "",
                buyer_phone=f"137{order_id:08d}" if rng.random() < 0.3 else "")
            orders.append((order, 0))
            out.append((ORDER_RECORDED, f"order-{order_id}", order))
        elif roll < 0.55 and orders:
            k = rng.randrange(len(orders))
            order, refunded = orders[k]
            if refunded >= order.amount:
                continue
            part = order.amount - refunded if rng.random() < 0.5 else (order.amount - refunded) // 2
            refunded += part
            orders[k] = (order, refunded)
            out.append((ORDER_REFUNDED, f"refund-{order.order_id}-{refunded}", events.OrderRefunded(
                refund_id=f"{order.order_id}-{refunded}", order_id=order.order_id, member_id=order.member_id,
                mall_id=order.mall_id, store_id=order.store_id, channel=order.channel, refund_amount=part,
                refund_paid_amount=part, order_amount=order.amount, order_paid_amount=order.paid_amount,
                total_refunded_amount=refunded, total_refunded_paid_amount=refunded,
                fully_refunded=refunded >= order.amount, points_reversed=part // 100,
                order_occur_time=order.occur_time, refund_time=_ts(NOW + timedelta(minutes=i)))))
        elif roll < 0.80:
            mid = member()
            asset = rng.choice(["ASSET_POINTS", "ASSET_POINTS", "ASSET_BALANCE", "ASSET_RED_PACKET"])
            settle = asset != "ASSET_BALANCE" and rng.random() < 0.2
            e = entry(mid, asset, "ENTRY_KIND_ADJUST" if settle else "ENTRY_KIND_EARN", rng.randint(1, 500),
                      mall_id=str(rng.randint(1, shape.malls)) if settle else "")
            out.append((ENTRY_POSTED, f"entry-{e.entry_id}", e))
        elif roll < 0.90:
            batch = events.EntriesPosted(entries=[entry(member(), "ASSET_POINTS", "ENTRY_KIND_EARN", rng.randint(1, 50),
                                                        mall_id="1") for _ in range(rng.randint(2, 20))])
            out.append((ENTRIES_POSTED, f"entries-{batch.entries[0].entry_id}", batch))
        elif roll < 0.95:
            out.append((VOUCHER_REDEEMED, f"voucher-{i}", events.VoucherRedeemed(
                redemption_id=f"v{i}", member_id=member(), mall_id=str(rng.randint(1, shape.malls)),
                store_id=str(rng.randint(1, shape.stores)), voucher_code=f"V{i}", points_cost=100,
                occur_time=_ts(NOW + timedelta(minutes=i)))))
        else:  # an older posting arriving late, under its own id: must not roll a balance back
            mid = member()
            late = events.EntryPosted(entry_id=str(max(1, entry_id - 50)), member_id=mid, asset="ASSET_POINTS",
                                      kind="ENTRY_KIND_EARN", amount=1, balance_after=1,
                                      create_time=_ts(NOW))
            out.append((ENTRY_POSTED, f"late-{i}", late))
    return out
