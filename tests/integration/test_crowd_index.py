"""The crowd index kept up to date in place, and loaded from its snapshot, equals one built from the database."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select, update

from crowdpack.customer.v1 import classification_service_pb2 as cls_pb
from crowdpack.customer.v1 import (
    classification_service_pb2_grpc,
    member_service_pb2_grpc,
    organization_service_pb2_grpc,
)
from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from services.common.db import Database
from services.customer.classification.models import CustomerTag
from services.customer.config import CustomerSettings
from services.customer.crowds import loader
from services.customer.crowds.catalogue import load_catalogue
from services.customer.crowds.index import MEMBER_ID_FIELDS, CrowdIndex, member_ids
from services.customer.crowds.translate import Translator
from services.customer.models import Customer, CustomerInteraction, CustomerStats, MemberOrder
from services.customer.service import build_spec
from tests.support import crowd_data
from tests.support.crowd_index import contents, fresh, wait_until
from tests.support.crowd_sql import SqlCrowd
from tests.support.customer import SUPER
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("customer")


MIGRATIONS = Path("services/customer/migrations")
NOW = datetime(2026, 11, 1, tzinfo=UTC)
TODAY = date(2026, 11, 1)


async def agree_with_sql(db: Database, index: CrowdIndex, ids: dict, seed: int, n: int = 25) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        definition = crowd_data.definition(rng, ids)
        async with db.read() as session:
            translation = Translator(await load_catalogue(session), TODAY).translate(definition)
            expected = await SqlCrowd(session, TODAY, ZoneInfo("Asia/Shanghai")).evaluate(definition)
        assert sorted(await index.evaluate(translation)) == sorted(expected), definition


@pytest.fixture
async def seeded(database_url):
    db = Database(database_url, MIGRATIONS)
    await db.migrate()
    ids = await crowd_data.seed(db, random.Random(5), members=200)
    try:
        yield db, ids
    finally:
        await db.dispose()


class Recording:
    """A MemberIndex that notes which bitmaps are written, and which are read (evaluated)."""

    def __init__(self, inner) -> None:
        self.inner, self.written, self.read = inner, [], []

    def evaluate(self, package):
        self.read.extend(c["bitmap"] for g in package["groups"] for c in g["all"] if "bitmap" in c)
        return self.inner.evaluate(package)

    def set_bitmap(self, name, bitmap) -> None:
        self.written.append(name)
        self.inner.set_bitmap(name, bitmap)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


async def test_refreshing_changed_members_equals_a_rebuild_and_writes_only_the_bitmaps_they_move(seeded):
    db, ids = seeded
    index = await fresh(db)
    async with db.read() as session:
        members = list((await session.scalars(select(Customer.id).where(Customer.kind == 1)
                                              .order_by(Customer.id))).all())
        tagged = (await session.execute(select(CustomerTag.customer_id, CustomerTag.tag_id)
                                        .order_by(CustomerTag.customer_id))).first()
        interacted = (await session.execute(select(CustomerInteraction.customer_id, CustomerInteraction.mall_id)
                                            .order_by(CustomerInteraction.customer_id))).first()
    a, b, c, d, e, f = members[3:9]
    new_tag, group = ids["tags"][0], ids["groups"][1]
    async with db.read() as session:
        d_malls = set((await session.scalars(select(CustomerInteraction.mall_id).where(
            CustomerInteraction.customer_id == d))).all())
    d_mall = next(mall for mall in ids["malls"] if mall not in d_malls)
    async with db.transaction() as session:
        # tag added and removed
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == tagged.customer_id,
                                                        CustomerTag.tag_id == tagged.tag_id))
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == a, CustomerTag.tag_id == new_tag))
        session.add(CustomerTag(customer_id=a, tag_id=new_tag, created_at=NOW))
        # group moves (one to the default group)
        await session.execute(update(Customer).where(Customer.id == b).values(group_id=group))
        await session.execute(update(Customer).where(Customer.id == c).values(group_id=None))
        # interaction malls gained and lost
        await session.execute(delete(CustomerInteraction).where(
            CustomerInteraction.customer_id == interacted.customer_id,
            CustomerInteraction.mall_id == interacted.mall_id))
        await session.execute(delete(CustomerInteraction).where(CustomerInteraction.customer_id == d))
        session.add(CustomerInteraction(customer_id=d, mall_id=d_mall, first_kind="consume", first_at=NOW))
        # attributes: level, card, birthday, balance; a deletion and a business customer
        await session.execute(update(Customer).where(Customer.id == e).values(
            level=3, card_opened=True, card_open_time=NOW - timedelta(hours=20), birthday=date(1996, 2, 29),
            level_expires_at=NOW + timedelta(days=40), disabled=True, deleted_at=None))
        await session.execute(update(CustomerStats).where(CustomerStats.customer_id == e).values(points_balance=4321))
        await session.execute(update(Customer).where(Customer.id == f).values(deleted_at=NOW))
        await session.execute(update(Customer).where(Customer.id == members[9]).values(kind=2))
        # a new member, beyond the index's rows
        newcomer = Customer(kind=1, phone="13999999999", name="new", real_name="", gender=2, birthday=None,
                            avatar_url="", registered_at=NOW, registration_mall_id=ids["malls"][0], card_opened=False,
                            card_open_channel=0, promotion_channel="", open_scene="", level=1, level_frozen=False,
                            group_id=group, disabled=False, review_status=2, store_member=True, virtual=False,
                            created_at=NOW, updated_at=NOW)
        session.add(newcomer)
        await session.flush()
        session.add(CustomerTag(customer_id=newcomer.id, tag_id=new_tag, created_at=NOW))
    changed = {tagged.customer_id, a, b, c, interacted.customer_id, d, e, f, members[9], newcomer.id}

    before = contents(index)
    recording = Recording(index.index)
    index.index = recording  # type: ignore[assignment]
    await index.refresh_members([*changed, 999_999])  # an id that is nobody is ignored
    index.index = recording.inner
    after, rebuilt = contents(index), contents(await fresh(db))
    assert after == rebuilt
    moved = {name for name in set(before["bitmaps"]) | set(after["bitmaps"])
             if before["bitmaps"].get(name) != after["bitmaps"].get(name)}
    assert moved >= {"live", f"group:{group}", "group:default", f"tag:{new_tag}", f"tag:{tagged.tag_id}",
                     f"interaction:{d_mall}"}
    assert set(recording.written) == moved  # untouched bitmaps are neither rewritten ...
    assert set(recording.read) <= moved  # ... nor read
    await agree_with_sql(db, index, ids, seed=1)

    # Refreshing members that did not change writes no bitmap at all.
    recording = Recording(index.index)
    index.index = recording  # type: ignore[assignment]
    await index.refresh_members(members[20:40])
    index.index = recording.inner
    assert recording.written == [] and recording.read == [] and contents(index) == rebuilt


async def test_a_build_read_in_small_chunks_equals_one_read_in_large_ones(seeded, monkeypatch):
    db, _ = seeded
    whole = contents(await fresh(db))
    monkeypatch.setattr(loader, "CHUNK", 7)  # many chunks (id ranges on PostgreSQL) for 200 members
    assert contents(await fresh(db)) == whole


async def test_unions_are_recomputed_only_when_a_bitmap_they_join_changes(seeded):
    db, ids = seeded
    index = await fresh(db)
    tags = ids["tags"][:2]
    definition = crowd_data.pb.CrowdDefinition(groups=[crowd_data.pb.ConditionGroup(conditions=[
        crowd_data.pb.Condition(tags=crowd_data.pb.TagCondition(tag_ids=[str(t) for t in tags]))])])
    async with db.read() as session:
        translation = Translator(await load_catalogue(session), TODAY).translate(definition)
        someone = (await session.scalars(select(Customer.id).where(Customer.kind == 1, Customer.deleted_at.is_(None))
                                         .order_by(Customer.id))).first()
    first = set(await index.evaluate(translation))
    async with db.transaction() as session:
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == someone,
                                                        CustomerTag.tag_id.in_(tags)))
        session.add(CustomerTag(customer_id=someone, tag_id=tags[0], created_at=NOW))
    await index.refresh_members([someone])
    assert set(await index.evaluate(translation)) == first | {someone}
    async with db.transaction() as session:
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == someone))
    await index.refresh_members([someone])
    assert set(await index.evaluate(translation)) == first - {someone}


async def test_orders_already_in_the_index_are_not_added_twice(seeded):
    db, ids = seeded
    index = await fresh(db)
    async with db.read() as session:
        order_ids = list((await session.scalars(select(MemberOrder.order_id).where(
            MemberOrder.fully_refunded.is_(False)))).all())
        buyer = (await session.scalars(select(Customer.id).where(Customer.kind == 1, Customer.deleted_at.is_(None))
                                       .order_by(Customer.id))).first()
    before = contents(index)
    await index.append_orders(order_ids[:10])  # e.g. events replayed after a reload that already saw them
    assert contents(index) == before
    async with db.transaction() as session:
        session.add(MemberOrder(order_id=10_000, customer_id=buyer,
                                mall_id=ids["malls"][0], store_id=ids["stores"][0], channel="ORDER_CHANNEL_POS",
                                amount_fen=100, paid_amount_fen=100, refunded_amount_fen=0, fully_refunded=False,
                                occurred_at=NOW))
    await index.append_orders([10_000, 10_000])
    await index.append_orders([10_000])
    assert contents(index) == contents(await fresh(db))
    assert contents(index)["orders"] == before["orders"] + 1


async def test_start_prefers_a_usable_snapshot_and_otherwise_builds(seeded, js, tmp_path):
    db, ids = seeded
    folder = tmp_path / "snapshot"
    first = CrowdIndex(db)
    assert await first.start(js, folder) == "database"
    first.orders_changed()  # a refund seen before shutdown must still reload the orders after the restart
    first.save(folder)
    built = contents(await fresh(db))

    again = CrowdIndex(db)
    assert await again.start(js, folder) == "snapshot"
    assert contents(again) == built
    await agree_with_sql(db, again, ids, seed=2)
    assert len(list(folder.glob("crowd-index-*"))) == 2  # one index and its order ids
    again.save(folder)
    assert len(list(folder.glob("crowd-index-*"))) == 2  # the previous snapshot's files are gone
    # A restored index knows where each member was: a member leaving a tag and a group is refreshed right.
    async with db.transaction() as session:
        member, tag = (await session.execute(select(CustomerTag.customer_id, CustomerTag.tag_id)
                                             .order_by(CustomerTag.customer_id))).first()
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == member))
        await session.execute(update(Customer).where(Customer.id == member).values(group_id=None))
    await again.refresh_members([member])
    built = contents(await fresh(db))
    assert contents(again) == built and member not in again.index.evaluate(
        {"groups": [{"op": "include", "all": [{"bitmap": f"tag:{tag}"}]}]})
    again.save(folder)

    # A snapshot made for another time zone, or ahead of the stream, or damaged, is not used.
    assert await CrowdIndex(db, "Europe/London").start(js, folder) == "database"
    manifest = json.loads((folder / "crowd-index.json").read_text())
    (folder / "crowd-index.json").write_text(json.dumps({**manifest, "sequence": 10**6}))
    assert await CrowdIndex(db).start(js, folder) == "database"
    (folder / "crowd-index.json").write_text(json.dumps(manifest))
    (folder / f"crowd-index-{manifest['token']}.bin").write_bytes(b"not an index")
    damaged = CrowdIndex(db)
    assert await damaged.start(js, folder) == "database" and contents(damaged) == built


async def test_an_activity_event_with_values_is_applied_as_it_stands_and_other_events_have_members_re_read(
        seeded, monkeypatch):
    from types import SimpleNamespace

    from crowdpack.events.v1 import customer_events_pb2 as ev
    from services.common.events import MEMBER_LEVEL_CHANGED, MEMBER_UPDATED, MEMBERS_ACTIVITY_CHANGED
    from services.customer.member_events import activity_events
    from services.customer.member_rows import read_members, read_stats
    from services.customer.members.repository import MEMBER

    db, ids = seeded
    index = await fresh(db)
    async with db.read() as session:
        members = list((await session.scalars(select(Customer.id).where(Customer.kind == 1)
                                              .order_by(Customer.id))).all())
    a, b, c, d, e = members[10:15]
    mall = ids["malls"][-1]
    async with db.transaction() as session:  # what a projection batch, a level change and an import would change
        for member, points in ((a, 1234), (b, 55), (c, 66), (e, 77)):
            await session.execute(update(CustomerStats).where(CustomerStats.customer_id == member).values(
                points_balance=points, online_count=3, online_total_fen=9_000, online_last_at=NOW))
        await session.execute(update(Customer).where(Customer.id.in_([b, d])).values(
            level=2, level_expires_at=NOW + timedelta(days=30)))
        await session.execute(update(Customer).where(Customer.id == a).values(store_member=True))
        await session.execute(delete(CustomerInteraction).where(CustomerInteraction.customer_id == a,
                                                                CustomerInteraction.mall_id == mall))
        session.add(CustomerInteraction(customer_id=a, mall_id=mall, first_kind="consume", first_at=NOW))

    def rows(session):
        conn = session.connection()
        read, stats = read_members(conn, [a, b, e], MEMBER), read_stats(conn, [a, b, e])
        return [(read[m], stats[m]) for m in (a, b, e)]

    carried = await db.run_sync_write(rows)
    with_values = activity_events(carried, [], False, [(a, mall)])[0]
    without_values = ev.MembersActivityChanged(member_ids=[str(c)])
    messages = [  # in stream order: b's level change is covered by the activity event after it, d's is not
        (MEMBER_LEVEL_CHANGED, ev.MemberLevelChanged(member_id=str(b), from_level=0, to_level=2)),
        (MEMBER_UPDATED, ev.MemberUpdated(member_id=str(a), changed_fields=["phone", "store_member"])),
        (MEMBERS_ACTIVITY_CHANGED, with_values),
        (MEMBERS_ACTIVITY_CHANGED, without_values),
        (MEMBER_LEVEL_CHANGED, ev.MemberLevelChanged(member_id=str(d), from_level=0, to_level=2)),
        (MEMBER_UPDATED, ev.MemberUpdated(member_id=str(e), changed_fields=["group_id"])),
    ]
    reread: list[int] = []
    refresh = index.refresh_members

    async def recording(members_read):
        members_read = list(members_read)
        reread.extend(members_read)
        await refresh(members_read)

    monkeypatch.setattr(index, "refresh_members", recording)
    await index.apply([SimpleNamespace(subject=subject, data=event.SerializeToString())
                       for subject, event in messages])
    assert sorted(reread) == sorted([c, d, e])  # a and b: from the event alone
    assert contents(index) == contents(await fresh(db))


def test_events_name_their_members_by_any_id_field():
    from crowdpack.events.v1 import customer_events_pb2 as ev
    from services.common.events import SUBJECT_TYPES

    assert list(member_ids(ev.MemberUpdated(member_id="12"))) == [12]
    assert list(member_ids(ev.CustomerTagged(customer_id="7", tag_id="3"))) == [7]
    # a fast import's batch events name the members it created and the ones it changed
    assert list(member_ids(ev.MembersImported(job_id="9", member_ids=["5", "6"]))) == [5, 6]
    assert list(member_ids(ev.MembersImported(job_id="9", updated_member_ids=["2", "3"]))) == [2, 3]

    def names_members(descriptor, depth: int = 0) -> bool:
        return any(f.name in MEMBER_ID_FIELDS
                   or (f.message_type is not None and depth < 3 and names_members(f.message_type, depth + 1))
                   for f in descriptor.fields)

    # Every event about members carries ids the index finds.
    for subject, cls in SUBJECT_TYPES.items():
        if subject.startswith(("customer.member", "customer.tag")):
            assert names_members(cls.DESCRIPTOR), subject


async def test_the_service_restarts_from_its_snapshot_and_replays_what_happened_while_it_was_down(
        database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    ours, elsewhere = tmp_path / "ours", tmp_path / "elsewhere"

    async def caught_up(rt) -> bool:
        index = rt.ctx.extras["crowd_index"]
        return contents(index) == contents(await fresh(rt.ctx.db))

    async def member(channel, name: str, i: int, mall: str) -> str:
        stub = member_service_pb2_grpc.MemberServiceStub(channel)
        return (await stub.CreateMember(member_pb.CreateMemberRequest(
            request_id=f"m-{name}", phone=f"1380000{i:04d}", name=name, gender=m.GENDER_FEMALE,
            registration_mall_id=mall), metadata=SUPER)).member.member_id

    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=ours) as (rt, channel):
        assert rt.ctx.extras["crowd_index"].source == "database"
        mall = (await organization_service_pb2_grpc.OrganizationServiceStub(channel).CreateMall(
            org_pb.CreateMallRequest(request_id="mall", name="A"), metadata=SUPER)).mall.mall_id
        first = [await member(channel, f"a{i}", i, mall) for i in range(3)]
        assert await wait_until(lambda: caught_up(rt))
    assert (ours / "customer-crowd-index" / "crowd-index.json").exists()

    # While "our" process is down, another one (its own state folder) changes members.
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=elsewhere) as (rt, channel):
        assert rt.ctx.extras["crowd_index"].source == "database"
        later = [await member(channel, f"b{i}", 10 + i, mall) for i in range(2)]
        classification = classification_service_pb2_grpc.ClassificationServiceStub(channel)
        tag = (await classification.CreateTag(cls_pb.CreateTagRequest(request_id="t", name="vip"),
                                              metadata=SUPER)).tag.tag_id
        await classification.TagCustomers(cls_pb.TagCustomersRequest(
            request_id="tag", customer_ids=[first[0], later[1]], tag_ids=[tag]), metadata=SUPER)
        await member_service_pb2_grpc.MemberServiceStub(channel).SetMemberDisabled(member_pb.SetMemberDisabledRequest(
            request_id="off", member_id=first[1], disabled=True), metadata=SUPER)
        assert await wait_until(lambda: caught_up(rt))

    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=ours) as (rt, channel):
        index = rt.ctx.extras["crowd_index"]
        assert index.source == "snapshot"
        assert await wait_until(lambda: caught_up(rt)), "the replay did not bring the snapshot up to date"
        assert int(later[1]) in set(index.index.evaluate(
            {"groups": [{"op": "include", "all": [{"bitmap": f"tag:{tag}"}]}]}))
