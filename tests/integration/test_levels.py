"""Levels: definitions, manual changes that freeze, automatic upgrades by spend, expiry, the change record."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crowdpack.customer.v1 import level_service_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from services.customer.levels import rules
from services.customer.members.repository import MemberRepository
from tests.support.customer import SUPER, mall_admin, mask, rpc_error

pytestmark = pytest.mark.database("customer")


def level(number: int, **kw) -> pb.Level:
    base = dict(number=number, name=f"L{number}", discount_permille=1000 - number * 10,
                upgrade_mode=pb.UPGRADE_MODE_AUTOMATIC, upgrade_spend_fen=number * 100_000, validity_months=12,
                retain_spend_fen=40_000)
    base.update(kw)
    return pb.Level(**base)


async def define(customer, *numbers: int) -> None:
    for n in numbers:
        await customer.levels.CreateLevel(pb.CreateLevelRequest(request_id=f"lv{n}", level=level(n)), metadata=SUPER)


async def new_member(customer, rid: str = "m1", phone: str = "13600000001") -> str:
    reply = await customer.members.CreateMember(member_pb.CreateMemberRequest(request_id=rid, phone=phone),
                                                metadata=SUPER)
    return reply.member.member_id


async def test_definitions_are_bounded_and_validated(customer):
    await define(customer, *range(1, 11))
    err = await rpc_error(customer.levels.CreateLevel(pb.CreateLevelRequest(request_id="x", level=level(5)),
                                                      metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION  # an 11th level
    await customer.levels.DeleteLevel(pb.DeleteLevelRequest(request_id="d10", number=10), metadata=SUPER)
    for bad, field in [(level(11), "level.number"), (level(0), "level.number"),
                       (level(10, discount_permille=1001), "level.discount_permille"),
                       (level(10, upgrade_mode=9), "level.upgrade_mode"),
                       (level(10, upgrade_spend_fen=-1), "level.upgrade_spend_fen"),
                       (level(10, name="L1"), "level.name")]:
        err = await rpc_error(customer.levels.CreateLevel(pb.CreateLevelRequest(request_id=f"bad-{field}-{bad.number}",
                                                                                level=bad), metadata=SUPER))
        assert err.details().startswith(field), (field, err.details())
    listed = await customer.levels.ListLevels(pb.ListLevelsRequest())
    assert [lv.number for lv in listed.levels] == list(range(1, 10))
    first = await customer.levels.ListLevels(pb.ListLevelsRequest(page_size=4))
    assert len(first.levels) == 4 and first.next_page_token
    updated = await customer.levels.UpdateLevel(pb.UpdateLevelRequest(
        request_id="u", level=pb.Level(number=2, discount_permille=900), update_mask=mask("discount_permille")),
        metadata=SUPER)
    assert updated.level.discount_permille == 900 and updated.level.name == "L2"


async def test_manual_change_freezes_and_a_held_level_cannot_be_deleted(customer):
    await define(customer, 1, 2, 3)
    member_id = await new_member(customer)
    change = (await customer.levels.ChangeMemberLevel(pb.ChangeMemberLevelRequest(
        request_id="c", member_id=member_id, to_level=3, reason="VIP"), metadata=SUPER)).change
    assert (change.from_level, change.to_level, change.kind, change.operator_id) == (
        0, 3, pb.LEVEL_CHANGE_KIND_MANUAL, "super-1")
    member = (await customer.members.GetMember(member_pb.GetMemberRequest(member_id=member_id))).member
    assert member.level == 3 and member.level_frozen and member.HasField("level_expire_time")
    err = await rpc_error(customer.levels.DeleteLevel(pb.DeleteLevelRequest(request_id="d", number=3), metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = await rpc_error(customer.levels.ChangeMemberLevel(pb.ChangeMemberLevelRequest(
        request_id="c2", member_id=member_id, to_level=7), metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    # Frozen: spend does not move the level.
    async with customer.db.transaction() as session:
        m = await MemberRepository(session).get(int(member_id))
        assert await rules.apply_spend(session, m, 10_000_000, datetime.now(UTC)) is None
    await customer.members.SetMemberDisabled(member_pb.SetMemberDisabledRequest(
        request_id="dis", member_id=member_id, disabled=True), metadata=SUPER)
    err = await rpc_error(customer.levels.ChangeMemberLevel(pb.ChangeMemberLevelRequest(
        request_id="c3", member_id=member_id, to_level=1), metadata=SUPER))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_spend_upgrades_automatically_and_expiry_retains_or_downgrades(customer):
    await define(customer, 1, 2, 3)
    rich, poor = await new_member(customer, "a", "13600000001"), await new_member(customer, "b", "13600000002")
    start = datetime(2025, 1, 31, tzinfo=UTC)
    async with customer.db.transaction() as session:
        repo = MemberRepository(session)
        a, b = await repo.get(int(rich)), await repo.get(int(poor))
        up = await rules.apply_spend(session, a, 250_000, start)  # passes L1 (100,000) and L2 (200,000)
        assert (up.from_level, up.to_level) == (0, 2)
        assert await rules.apply_spend(session, a, 10_000, start) is None  # not yet L3
        await rules.apply_spend(session, b, 100_000, start)
        assert a.level_expires_at == datetime(2026, 1, 31, tzinfo=UTC)
        await rules.apply_spend(session, a, 30_000, start + timedelta(days=30))  # 40,000 in the period: retains
    expiry = Timestamp()
    expiry.FromDatetime(datetime(2026, 2, 1, tzinfo=UTC))
    ran = await customer.levels.RunLevelExpiry(pb.RunLevelExpiryRequest(request_id="e1", as_of_time=expiry),
                                               metadata=SUPER)
    assert (ran.retained, ran.downgraded) == (1, 1)
    a = (await customer.members.GetMember(member_pb.GetMemberRequest(member_id=rich))).member
    b = (await customer.members.GetMember(member_pb.GetMemberRequest(member_id=poor))).member
    assert a.level == 2 and b.level == 0 and a.level_expire_time.ToDatetime().year == 2027
    changes = (await customer.levels.ListLevelChanges(pb.ListLevelChangesRequest(member_id=rich))).changes
    assert [(c.from_level, c.to_level, c.kind) for c in changes] == [
        (2, 2, pb.LEVEL_CHANGE_KIND_RETAIN), (0, 2, pb.LEVEL_CHANGE_KIND_UPGRADE)]
    downgrades = (await customer.levels.ListLevelChanges(
        pb.ListLevelChangesRequest(kind=pb.LEVEL_CHANGE_KIND_DOWNGRADE))).changes
    assert [c.member_id for c in downgrades] == [poor]


async def test_export_is_csv_with_bom_capped_and_for_super_admins(customer):
    await define(customer, 1, 2, 3)
    member_id = await new_member(customer)
    for i, to_level in enumerate([1, 2, 3, 2, 1, 3, 2]):
        await customer.levels.ChangeMemberLevel(pb.ChangeMemberLevelRequest(
            request_id=f"c{i}", member_id=member_id, to_level=to_level, reason="测试"), metadata=SUPER)
    export = await customer.levels.ExportLevelChanges(pb.ExportLevelChangesRequest(), metadata=SUPER)
    assert export.csv.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(export.csv.decode("utf-8-sig"))))
    assert rows[0] == ["变更编号", "会员编号", "原等级", "新等级", "变更类型", "原因", "操作人", "变更时间"]
    assert len(rows) - 1 == export.row_count == 5 and export.truncated  # the service caps at 5 in this test
    assert rows[1][3] == "2" and rows[1][5] == "测试" and {r[4] for r in rows[1:]} == {"手动调整"}
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", r[7]) for r in rows[1:])
    err = await rpc_error(customer.levels.ExportLevelChanges(pb.ExportLevelChangesRequest(),
                                                             metadata=mall_admin("1")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
