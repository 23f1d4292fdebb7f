"""The customer timeline: the ledger's manual adjustments appear in it, and its fields keep one type each."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.events.v1 import ledger_events_pb2 as events
from services.common.db import Database
from tests.support.customer import SUPER
from tests.support.waiting import caught_up

MIGRATIONS = Path("services/customer/migrations")
NOW = "'2026-01-01 00:00:00'"


def ts(day: int) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(datetime(2026, 10, day, 12, tzinfo=UTC))
    return out


async def publish(js, subject: str, message, msg_id: str) -> None:
    await js.publish(subject, message.SerializeToString(), headers={"Nats-Msg-Id": msg_id})


async def timeline(customer, member_id: str) -> list[tuple[str, str, dict]]:
    entries = (await customer.members.ListTimeline(pb.ListTimelineRequest(customer_id=member_id))).entries
    return [(e.kind, e.actor_id, json.loads(e.detail_json)) for e in reversed(entries)]


@pytest.mark.database("customer")
async def test_manual_points_balance_and_red_packet_adjustments_appear_with_their_operator(customer, js):
    mall = await customer.mall("Home")
    member = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="m", phone="13500000031", registration_mall_id=mall), metadata=SUPER)).member
    mid = member.member_id

    def entry(entry_id: int, asset: str, amount: int, **kw) -> events.EntryPosted:
        return events.EntryPosted(entry_id=str(entry_id), member_id=mid, asset=asset, amount=amount,
                                  balance_after=abs(amount), kind=kw.pop("kind", "ENTRY_KIND_ADJUST"),
                                  create_time=ts(5), **kw)

    await publish(js, "ledger.entry.posted.v1", entry(1, "ASSET_POINTS", 200, mall_id=mall, operator_id="staff-7",
                                                      reason="活动补偿", reason_template_id="3"), "e1")
    await publish(js, "ledger.entries.posted.v1", events.EntriesPosted(entries=[
        entry(2, "ASSET_BALANCE", -1_500, operator_id="staff-8", reason="退款修正"),
        entry(3, "ASSET_RED_PACKET", 800, mall_id=mall, operator_id="staff-8"),
        entry(4, "ASSET_POINTS", 50, kind="ENTRY_KIND_EARN", order_id="9"),      # an order's points: no entry
        entry(5, "ASSET_POINTS", -50, kind="ENTRY_KIND_ADJUST", order_id="9"),   # tied to an order: no entry
    ]), "batch")
    await publish(js, "ledger.entry.posted.v1", entry(1, "ASSET_POINTS", 200, mall_id=mall), "e1")  # a repeat
    await caught_up(js, "LEDGER", "customer-ledger-events")

    adjusted = [(actor, d) for kind, actor, d in await timeline(customer, mid) if kind == "adjusted"]
    assert [(actor, d["asset"], d["amount"], d["mall_id"]) for actor, d in adjusted] == [
        ("staff-7", "ASSET_POINTS", 200, mall), ("staff-8", "ASSET_BALANCE", -1_500, ""),
        ("staff-8", "ASSET_RED_PACKET", 800, mall)]
    assert adjusted[0][1] == {"entry_id": "1", "asset": "ASSET_POINTS", "amount": 200, "balance_after": 200,
                              "mall_id": mall, "store_id": "", "reason": "活动补偿", "reason_template_id": "3"}


@pytest.mark.database("customer")
async def test_ids_are_strings_in_every_kind_of_entry(customer, js):
    home, other = await customer.mall("Home"), await customer.mall("Other")
    member = (await customer.members.CreateMember(pb.CreateMemberRequest(
        request_id="m", phone="13500000032", registration_mall_id=home), metadata=SUPER)).member
    mid = member.member_id
    await customer.members.OpenCard(pb.OpenCardRequest(request_id="card", member_id=mid, mall_id=other,
                                                       channel=m.OPEN_CHANNEL_WECHAT), metadata=SUPER)
    await publish(js, "ledger.order.recorded.v1", events.OrderRecorded(
        order_id="1", member_id=mid, mall_id=home, store_id="", channel="ORDER_CHANNEL_POS", amount=100,
        occur_time=ts(3)), "o1")
    await caught_up(js, "LEDGER", "customer-ledger-events")

    entries = await timeline(customer, mid)
    by_kind = {kind: d for kind, _, d in entries}
    assert by_kind["card_opened"]["mall_id"] == other and by_kind["order"]["mall_id"] == home
    for _, _, d in entries:
        for key, value in d.items():
            if key.endswith("_id"):
                assert isinstance(value, str), (key, value)


def upgrade(conn, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


async def test_stored_entries_are_migrated_to_the_one_type_of_each_field(database_url):
    # An empty database (no marker), migrated to the first revision, given entries of the old shapes.
    db = Database(database_url, MIGRATIONS)
    before = [
        ("card_opened", {"card_number": "8800000000001", "mall_id": 7, "channel": "OPEN_CHANNEL_WECHAT"}),
        ("card_opened", {"card_number": "8800000000002", "mall_id": None, "channel": "OPEN_CHANNEL_IMPORT"}),
        ("order", {"order_id": "1", "mall_id": "7", "amount_fen": 100}),
        ("attribute_changed", {"field": "registration_mall_id", "from": None, "to": 7}),
        ("attribute_changed", {"field": "name", "old": "甲", "new": "乙", "source": "import", "job_id": 4}),
        ("level_changed", {"from": 0, "to": 1, "change": "AUTOMATIC", "reason": ""}),
    ]
    try:
        async with db.write_engine.begin() as conn:
            await conn.run_sync(upgrade, "0001")
            await conn.execute(text(
                "INSERT INTO customer (id, kind, name, real_name, gender, avatar_url, registered_at, card_opened, "
                "card_open_channel, promotion_channel, open_scene, level, level_frozen, disabled, review_status, "
                f"store_member, virtual, created_at, updated_at) VALUES (1, 1, '', '', 3, '', {NOW}, :f, 0, "
                f"'', '', 0, :f, :f, 2, :f, :f, {NOW}, {NOW})"), {"f": False})
            for kind, detail in before:
                await conn.execute(text(
                    f"INSERT INTO timeline_entry (customer_id, kind, detail, actor_id, created_at) "
                    f"VALUES (1, :k, :d, 'x', {NOW})"), {"k": kind, "d": json.dumps(detail, ensure_ascii=False)})
        await db.migrate()
        async with db.read() as session:
            after = [json.loads(d) for d in await session.scalars(
                text("SELECT detail FROM timeline_entry ORDER BY id"))]
        assert after == [
            {"card_number": "8800000000001", "mall_id": "7", "channel": "OPEN_CHANNEL_WECHAT"},
            {"card_number": "8800000000002", "mall_id": "", "channel": "OPEN_CHANNEL_IMPORT"},
            {"order_id": "1", "mall_id": "7", "amount_fen": 100},
            {"field": "registration_mall_id", "from": "", "to": "7"},
            {"field": "name", "from": "甲", "to": "乙", "source": "import", "job_id": "4"},
            {"from": 0, "to": 1, "change": "AUTOMATIC", "reason": ""},
        ]
    finally:
        await db.dispose()
