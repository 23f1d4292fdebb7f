"""The member list: search, filters, every sort order, paging to the end, statistics."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as pb
from services.customer.members import repository
from services.customer.models import CustomerStats
from tests.support.customer import SUPER, rpc_error

pytestmark = pytest.mark.database("customer")


NOW = datetime(2026, 11, 1, tzinfo=UTC)


async def seed(customer, n: int = 12) -> list[m.Member]:
    members = []
    for i in range(n):
        members.append((await customer.members.CreateMember(pb.CreateMemberRequest(
            request_id=f"c{i}", phone=f"1370000{i:04d}", name=f"name{i % 3}", virtual=(i == n - 1)),
            metadata=SUPER)).member)
    rng = random.Random(7)
    async with customer.db.transaction() as session:
        for i, member in enumerate(members[: n - 2]):  # the last two have no ledger activity
            row = await session.get(CustomerStats, int(member.member_id))  # every member has one from the start
            row.points_balance, row.spend_count = rng.choice([0, 50, 50, 900]), i % 4
            row.spend_total_fen = rng.randint(0, 10**7)
            row.last_spend_at = NOW - timedelta(days=i * 20) if i % 4 else None
    return members


async def all_pages(stub, **kwargs) -> list[m.Member]:
    out, token = [], ""
    while True:
        page = await stub.ListMembers(pb.ListMembersRequest(page_size=4, page_token=token, **kwargs))
        assert len(page.members) <= 4
        out += list(page.members)
        token = page.next_page_token
        if not token:
            return out


def key(member: m.Member, order_by: int):
    s = member.stats
    return {pb.MEMBER_ORDER_BY_POINTS_BALANCE: s.points_balance, pb.MEMBER_ORDER_BY_SPEND_TOTAL: s.spend_total_fen,
            pb.MEMBER_ORDER_BY_SPEND_COUNT: s.spend_count,
            pb.MEMBER_ORDER_BY_LAST_SPEND_TIME: s.last_spend_time.ToSeconds() if s.HasField("last_spend_time") else 0,
            pb.MEMBER_ORDER_BY_CREATE_TIME: int(member.member_id)}[order_by]


@pytest.mark.parametrize("order_by", [pb.MEMBER_ORDER_BY_CREATE_TIME, pb.MEMBER_ORDER_BY_POINTS_BALANCE,
                                      pb.MEMBER_ORDER_BY_SPEND_TOTAL, pb.MEMBER_ORDER_BY_SPEND_COUNT,
                                      pb.MEMBER_ORDER_BY_LAST_SPEND_TIME])
@pytest.mark.parametrize("ascending", [False, True])
@pytest.mark.parametrize("windows", [repository.WALK_WINDOWS, (2, 5)], ids=["windows", "tiny-windows"])
async def test_every_order_pages_through_everyone_once_in_order(customer, order_by, ascending, windows, monkeypatch):
    # Tiny windows make pages switch between walking the sort index and sorting the filtered members.
    monkeypatch.setattr(repository, "WALK_WINDOWS", windows)
    members = await seed(customer)
    await customer.members.SetMemberDisabled(pb.SetMemberDisabledRequest(
        request_id="d", member_id=members[3].member_id, disabled=True), metadata=SUPER)
    enabled = await all_pages(customer.members, order_by=order_by, ascending=ascending,
                              filter=pb.MemberFilter(disabled=pb.TRI_STATE_NO))
    assert [x.member_id for x in enabled] == [x.member_id for x in sorted(
        enabled, key=lambda x: (key(x, order_by), int(x.member_id)), reverse=not ascending)]
    assert members[3].member_id not in {x.member_id for x in enabled}
    listed = await all_pages(customer.members, order_by=order_by, ascending=ascending)
    assert [x.member_id for x in enabled] == [x.member_id for x in listed if x.member_id != members[3].member_id]
    visible = [x for x in members if not x.virtual]
    assert sorted(x.member_id for x in listed) == sorted(x.member_id for x in visible)
    expected = sorted(listed, key=lambda x: (key(x, order_by), int(x.member_id)), reverse=not ascending)
    assert [x.member_id for x in listed] == [x.member_id for x in expected]


async def test_search_and_filters(customer):
    members = await seed(customer)
    stub = customer.members
    await stub.SetMemberDisabled(pb.SetMemberDisabledRequest(request_id="d", member_id=members[0].member_id,
                                                             disabled=True), metadata=SUPER)
    by_name = await all_pages(stub, filter=pb.MemberFilter(search="name1"))
    assert {x.member_id for x in by_name} == {x.member_id for x in members[1::3] if not x.virtual}
    by_phone = await all_pages(stub, filter=pb.MemberFilter(search="13700000005"))
    assert [x.member_id for x in by_phone] == [members[5].member_id]
    disabled = await all_pages(stub, filter=pb.MemberFilter(disabled=pb.TRI_STATE_YES))
    assert [x.member_id for x in disabled] == [members[0].member_id]
    enabled = await all_pages(stub, filter=pb.MemberFilter(disabled=pb.TRI_STATE_NO))
    assert len(enabled) == len(members) - 2
    with_virtual = await all_pages(stub, filter=pb.MemberFilter(include_virtual=True))
    assert len(with_virtual) == len(members)
    default_group = await all_pages(stub, filter=pb.MemberFilter(group_ids=["default"]))
    assert len(default_group) == len(members) - 1
    total = await stub.ListMembers(pb.ListMembersRequest(include_total=True, page_size=1))
    assert total.total_size == len(members) - 1


async def test_card_open_mall_and_level_frozen_filters(customer):
    """开卡商场 and 等级冻结 (document 001's member list filter)."""
    from crowdpack.customer.v1 import level_service_pb2 as lpb

    members = await seed(customer, 5)
    stub = customer.members
    mall_a, mall_b = await customer.mall("甲"), await customer.mall("乙")
    for member, mall in ((members[0], mall_a), (members[1], mall_b), (members[2], mall_a)):
        await stub.OpenCard(pb.OpenCardRequest(request_id=f"card-{member.member_id}", member_id=member.member_id,
                                               mall_id=mall, channel=m.OPEN_CHANNEL_WECHAT), metadata=SUPER)
    await customer.levels.SetLevelFrozen(lpb.SetLevelFrozenRequest(request_id="freeze", member_id=members[1].member_id,
                                                                   frozen=True), metadata=SUPER)
    in_a = await all_pages(stub, filter=pb.MemberFilter(card_open_mall_ids=[mall_a]))
    assert sorted(x.member_id for x in in_a) == sorted([members[0].member_id, members[2].member_id])
    in_both = await all_pages(stub, filter=pb.MemberFilter(card_open_mall_ids=[mall_a, mall_b]))
    assert len(in_both) == 3
    frozen = await all_pages(stub, filter=pb.MemberFilter(level_frozen=pb.TRI_STATE_YES))
    assert [x.member_id for x in frozen] == [members[1].member_id]
    not_frozen = await all_pages(stub, filter=pb.MemberFilter(level_frozen=pb.TRI_STATE_NO))
    assert len(not_frozen) == 3  # five seeded, the last virtual (left out), one frozen


@pytest.mark.parametrize(("request_", "field"), [
    (pb.ListMembersRequest(order_by=42), "order_by"),
    (pb.ListMembersRequest(filter=pb.MemberFilter(levels=[11])), "filter.levels"),
    (pb.ListMembersRequest(filter=pb.MemberFilter(tag_ids=["x"])), "filter.tag_ids"),
    (pb.ListMembersRequest(filter=pb.MemberFilter(disabled=7)), "filter.disabled"),
    (pb.ListMembersRequest(filter=pb.MemberFilter(level_frozen=7)), "filter.level_frozen"),
    (pb.ListMembersRequest(filter=pb.MemberFilter(card_open_mall_ids=["x"])), "filter.card_open_mall_ids"),
    (pb.ListMembersRequest(page_size=-1), "page_size"),
    (pb.ListMembersRequest(page_token="eyJvIjo5fQ=="), "page_token"),
])
async def test_bad_list_requests_name_the_field(customer, request_, field):
    err = await rpc_error(customer.members.ListMembers(request_))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(f"{field}:")


async def test_a_token_from_one_order_is_refused_by_another(customer):
    await seed(customer)
    page = await customer.members.ListMembers(pb.ListMembersRequest(page_size=2,
                                                                    order_by=pb.MEMBER_ORDER_BY_SPEND_TOTAL))
    err = await rpc_error(customer.members.ListMembers(pb.ListMembersRequest(
        page_size=2, page_token=page.next_page_token, order_by=pb.MEMBER_ORDER_BY_POINTS_BALANCE)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_statistics_scores_follow_the_documented_rules(customer):
    members = await seed(customer, n=3)
    now = datetime.now(UTC)
    async with customer.db.transaction() as session:
        for member in members:
            row = await session.get(CustomerStats, int(member.member_id))
            if row is not None:
                await session.delete(row)
        await session.flush()
        # member 0: R=5 (2 days), F=5 (12), M=5 (¥20,000) -> activity 5, value 5
        session.add(CustomerStats(customer_id=int(members[0].member_id), points_balance=0, red_packet_balance_fen=0,
                                  stored_balance_fen=0, spend_count=12, spend_total_fen=2_000_000,
                                  last_spend_at=now - timedelta(days=2), level_spend_fen=0, cumulative_spend_fen=0))
        # member 1: R=2 (100 days), F=2 (1), M=2 (¥100) -> activity 2, value 2
        session.add(CustomerStats(customer_id=int(members[1].member_id), points_balance=0, red_packet_balance_fen=0,
                                  stored_balance_fen=0, spend_count=1, spend_total_fen=10_000,
                                  last_spend_at=now - timedelta(days=100), level_spend_fen=0, cumulative_spend_fen=0))
    stats = (await customer.members.GetMemberStatistics(pb.GetMemberStatisticsRequest())).statistics
    assert stats.total == 2  # member 2 is virtual
    assert {c.key: c.count for c in stats.spending_power_distribution} == {"5": 1, "2": 1}
    assert {c.key: c.count for c in stats.activity_distribution} == {"5": 1, "2": 1}
    assert {c.key: c.count for c in stats.value_distribution} == {"5": 1, "2": 1}
    assert {c.key: c.count for c in stats.by_level} == {"0": 2}


async def test_a_search_takes_like_wildcards_literally(customer):
    stub = customer.members
    for i, name in enumerate(["100%纯棉", "a_b", "abc", "back\\slash"]):
        await stub.CreateMember(pb.CreateMemberRequest(request_id=f"w{i}", phone=f"1370000100{i}", name=name),
                                metadata=SUPER)

    async def names(term: str) -> list[str]:
        return sorted(x.name for x in await all_pages(stub, filter=pb.MemberFilter(search=term)))

    assert await names("%") == ["100%纯棉"]
    assert await names("_") == ["a_b"]
    assert await names("\\") == ["back\\slash"]
    assert await names("a_") == ["a_b"]
    assert await names("ab") == ["abc"]
    assert await names("1370000100") == ["100%纯棉", "a_b", "abc", "back\\slash"]  # a phone prefix
    assert await names("13%") == []


async def test_views_show_tags_by_name_and_malls_by_number(customer):
    """GetMember and ListMembers read each member's tags and interaction malls together: the tags in name order,
    the malls in numeric order (not as text: 9 before 10 before 100), nothing for a member without any."""
    from services.customer.classification.models import CustomerTag, Tag
    from services.customer.models import CustomerInteraction

    members = await seed(customer, 3)
    first, second = int(members[0].member_id), int(members[1].member_id)
    async with customer.db.transaction() as session:
        tags = [Tag(name=name, created_at=NOW) for name in ("gamma", "alpha", "beta")]
        session.add_all(tags)
        await session.flush()
        session.add_all([CustomerTag(customer_id=first, tag_id=t.id, created_at=NOW) for t in tags])
        session.add(CustomerTag(customer_id=second, tag_id=tags[0].id, created_at=NOW))
        session.add_all([CustomerInteraction(customer_id=first, mall_id=mall, first_kind="order", first_at=NOW)
                         for mall in (100, 9, 10)])
    detail = (await customer.members.GetMember(pb.GetMemberRequest(member_id=str(first)), metadata=SUPER)).member
    assert list(detail.tags) == ["alpha", "beta", "gamma"]
    assert list(detail.interaction_mall_ids) == ["9", "10", "100"]
    listed = {x.member_id: x for x in (await customer.members.ListMembers(
        pb.ListMembersRequest(page_size=10, filter=pb.MemberFilter(include_virtual=True)), metadata=SUPER)).members}
    assert list(listed[str(first)].tags) == ["alpha", "beta", "gamma"]
    assert list(listed[str(first)].interaction_mall_ids) == ["9", "10", "100"]
    assert list(listed[str(second)].tags) == ["gamma"] and list(listed[str(second)].interaction_mall_ids) == []
    third = listed[members[2].member_id]
    assert list(third.tags) == [] and list(third.interaction_mall_ids) == []
    assert listed[str(first)] == detail
