"""The shared outbox relay and idempotent consumer, on real NATS and a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js.errors import NoStreamResponseError
from sqlalchemy import func, select, update

from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.bus import ensure_streams
from services.common.clock import utcnow
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.events import CUSTOMER_STREAM, MEMBER_CREATED
from services.common.outbox import OutboxRelay, add_event
from services.customer.models import OutboxEvent
from services.ledger import accounts
from services.ledger.models import Account, ProcessedMessage
from tests.support.waiting import caught_up, eventually, stopped

CUSTOMER_MIGRATIONS = Path("services/customer/migrations")
LEDGER_MIGRATIONS = Path("services/ledger/migrations")


async def stream_count(js, name: str) -> int:
    return (await js.stream_info(name)).state.messages


async def run_until_caught_up(consumer: EventConsumer, js, timeout: float) -> None:
    """Runs the consumer until it has applied and acked its whole stream, then stops it as the service does."""
    task = asyncio.create_task(consumer.run())
    try:
        await caught_up(js, consumer.stream.name, consumer.durable, timeout=timeout)
    finally:
        await stopped(consumer, task)


async def make_db(url: str, migrations: Path) -> Database:
    db = Database(url, migrations)
    await db.migrate()
    return db


async def add_members_created(db: Database, count: int) -> None:
    """Commits ``count`` customer.member.created events (members 1, 2, ...) to the outbox."""
    async with db.transaction() as session:
        for i in range(count):
            add_event(session, OutboxEvent, events.MemberCreated(member_id=str(i + 1)))


@pytest.mark.database("customer")
async def test_relay_publishes_only_committed_events_and_republishes_without_duplicates(database_url, js):
    db = await make_db(database_url, CUSTOMER_MIGRATIONS)
    try:
        await add_members_created(db, 5)
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                add_event(session, OutboxEvent, events.MemberCreated(member_id="rolled-back"))
                raise RuntimeError("the change fails, so its event must not exist")

        relay = OutboxRelay(db, js, OutboxEvent)
        assert await relay.relay_once() == 5
        assert await relay.relay_once() == 0
        assert await stream_count(js, "CUSTOMER") == 5

        # A relay that died after publishing but before marking publishes again: the stream keeps one copy.
        async with db.transaction() as session:
            await session.execute(update(OutboxEvent).values(published_at=None))
        assert await relay.relay_once() == 5
        assert await stream_count(js, "CUSTOMER") == 5
    finally:
        await db.dispose()


@pytest.mark.database("customer")
async def test_a_refused_publish_leaves_its_rows_unsent_and_the_next_pass_sends_them_in_order(database_url, js):
    db = await make_db(database_url, CUSTOMER_MIGRATIONS)
    try:
        await add_members_created(db, 3)
        await js.delete_stream("CUSTOMER")  # nobody takes customer.> now: each publish is refused
        relay = OutboxRelay(db, js, OutboxEvent)
        with pytest.raises(NoStreamResponseError):
            await relay.relay_once()
        async with db.read() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.published_at.is_(None))) == 3
        await ensure_streams(js)
        assert await relay.relay_once() == 3
        assert await relay.relay_once() == 0
        info = await js.stream_info("CUSTOMER")
        sent = [events.MemberCreated.FromString((await js.get_msg("CUSTOMER", seq)).data).member_id
                for seq in range(info.state.first_seq, info.state.last_seq + 1)]
        assert sent == ["1", "2", "3"]
        # Nothing is left waiting for an ack: a refused pass gives back its places in the client's pending limit.
        assert js.publish_async_pending() == 0
    finally:
        await db.dispose()


@pytest.mark.database("customer")
async def test_relay_wakes_on_commit(database_url, js):
    db = await make_db(database_url, CUSTOMER_MIGRATIONS)
    relay = OutboxRelay(db, js, OutboxEvent, poll_s=30)  # polling alone would take 30 s
    passes = []
    first_pass = relay.relay_once

    async def counted_pass() -> int:
        passes.append(await first_pass())
        return passes[-1]

    relay.relay_once = counted_pass  # type: ignore[method-assign]
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: passes == [0])  # the first pass found nothing: the relay waits now
        async with db.transaction() as session:
            add_event(session, OutboxEvent, events.MemberCreated(member_id="7"))
        assert await eventually(lambda: stream_count(js, "CUSTOMER"), timeout=5) == 1
    finally:
        await stopped(relay, task)
        await db.dispose()


async def count_accounts(db: Database) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(Account))


@pytest.mark.database("ledger")
async def test_consumer_applies_a_message_once_even_when_redelivered(database_url, js):
    db = await make_db(database_url, LEDGER_MIGRATIONS)
    consumer = EventConsumer(db, js, durable="ledger-test", stream=CUSTOMER_STREAM,
                             handlers={MEMBER_CREATED: accounts.open_member_accounts}, model=ProcessedMessage)
    payload = events.MemberCreated(member_id="42").SerializeToString()
    try:
        # Applied before a crash that lost the ack: the redelivery finds the id and changes nothing.
        assert await consumer.apply("msg-1", MEMBER_CREATED, payload) is True
        assert await consumer.apply("msg-1", MEMBER_CREATED, payload) is False
        assert await count_accounts(db) == 3

        await consumer.ensure()
        await js.publish(MEMBER_CREATED, payload, headers={"Nats-Msg-Id": "msg-1"})
        await js.publish(MEMBER_CREATED, events.MemberCreated(member_id="43").SerializeToString(),
                         headers={"Nats-Msg-Id": "msg-2"})
        task = asyncio.create_task(consumer.run())
        try:
            await caught_up(js, "CUSTOMER", "ledger-test")
            info = await js.consumer_info("CUSTOMER", "ledger-test")
            assert info.num_redelivered == 0
        finally:
            await stopped(consumer, task)
        async with db.read() as session:
            processed = await session.scalar(select(func.count()).select_from(ProcessedMessage))
        assert processed == 2
        assert await count_accounts(db) == 6
    finally:
        await db.dispose()


@pytest.mark.database("ledger")
async def test_consumer_retries_a_failing_handler_then_terminates_poison(database_url, js):
    db = await make_db(database_url, LEDGER_MIGRATIONS)
    calls: dict[str, int] = {}

    async def flaky(session, event):
        calls[event.member_id] = calls.get(event.member_id, 0) + 1
        if event.member_id == "poison" or calls[event.member_id] == 1:
            raise RuntimeError(f"cannot handle {event.member_id} now")
        await accounts.open_member_accounts(session, event)

    consumer = EventConsumer(db, js, durable="ledger-test", stream=CUSTOMER_STREAM,
                             handlers={MEMBER_CREATED: flaky}, model=ProcessedMessage, max_deliver=2, batched=False)
    await consumer.ensure()
    for i, member in enumerate(["poison", "1"]):
        await js.publish(MEMBER_CREATED, events.MemberCreated(member_id=member).SerializeToString(),
                         headers={"Nats-Msg-Id": f"m{i}"})
    try:
        await run_until_caught_up(consumer, js, timeout=15)
    finally:
        await db.dispose()
    assert calls == {"poison": 2, "1": 2}


@pytest.mark.database("ledger")
async def test_a_batch_commits_once_and_a_poison_message_in_it_blocks_and_redoes_nothing(database_url, js):
    """Batched mode: a fetched batch applies in one transaction; when one message of it fails, the batch is
    applied again one message per transaction, so the others apply exactly once and the poison one is terminated
    alone; duplicates (in the batch or recorded before) change nothing."""
    db = await make_db(database_url, LEDGER_MIGRATIONS)
    batches: list[int] = []

    async def handler(session, event):
        if event.member_id == "poison":
            raise RuntimeError("cannot handle poison")
        await accounts.open_member_accounts(session, event)

    consumer = EventConsumer(db, js, durable="ledger-test", stream=CUSTOMER_STREAM,
                             handlers={MEMBER_CREATED: handler}, model=ProcessedMessage, max_deliver=2, batch=50)
    original = consumer.apply_batch

    async def counting(items):
        batches.append(len(items))
        return await original(items)

    consumer.apply_batch = counting  # type: ignore[method-assign]
    await consumer.ensure()
    members = [str(i) for i in range(1, 21)]
    members.insert(7, "poison")
    for i, member in enumerate(members):
        await js.publish(MEMBER_CREATED, events.MemberCreated(member_id=member).SerializeToString(),
                         headers={"Nats-Msg-Id": f"m{i}"})
    # The same message again under another id (a republish) and a repeat of a recorded id in the stream.
    await js.publish(MEMBER_CREATED, events.MemberCreated(member_id="1").SerializeToString(),
                     headers={"Nats-Msg-Id": "m0-again"})
    await run_until_caught_up(consumer, js, timeout=20)
    try:
        async with db.read() as session:
            recorded = set(await session.scalars(select(ProcessedMessage.msg_id)))
        assert await count_accounts(db) == 3 * 20  # every good member once (member 1's repeat opened nothing new)
        assert "m7" not in recorded  # the poison message was terminated, never recorded as applied
        assert {f"m{i}" for i in range(len(members)) if i != 7} | {"m0-again"} <= recorded
        assert batches and max(batches) > 1  # the batch went as one transaction first
    finally:
        await db.dispose()


@pytest.mark.database("ledger")
async def test_a_sync_batch_handler_takes_whole_batches_and_a_poison_message_falls_back_alone(database_url, js):
    """A ``sync_batch_handler`` applies a fetched batch in one ``run_sync_write`` transaction with its dedupe rows;
    a batch it fails on is applied again one message per transaction by the handlers, as in batched mode."""
    db = await make_db(database_url, LEDGER_MIGRATIONS)
    batches: list[list[str]] = []

    def whole(session, items):
        members = [event.member_id for _, event in items]
        if "poison" in members:
            raise RuntimeError("cannot handle poison")
        batches.append(members)
        session.add_all(Account(member_id=m, asset=1, balance=0, opened_at=utcnow()) for m in members)

    async def one(session, event):
        if event.member_id == "poison":
            raise RuntimeError("cannot handle poison")
        session.add(Account(member_id=event.member_id, asset=1, balance=0, opened_at=utcnow()))

    consumer = EventConsumer(db, js, durable="ledger-test", stream=CUSTOMER_STREAM, handlers={MEMBER_CREATED: one},
                             model=ProcessedMessage, max_deliver=2, batch=50, sync_batch_handler=whole)
    await consumer.ensure()

    async def publish(members: list[str], prefix: str) -> None:
        for i, member in enumerate(members):
            await js.publish(MEMBER_CREATED, events.MemberCreated(member_id=member).SerializeToString(),
                             headers={"Nats-Msg-Id": f"{prefix}{i}"})

    await publish([str(i) for i in range(1, 11)], "a")
    task = asyncio.create_task(consumer.run())
    try:
        await caught_up(js, "CUSTOMER", "ledger-test", timeout=20)
        await publish(["11", "poison", "12"], "b")
        await caught_up(js, "CUSTOMER", "ledger-test", timeout=20)
        # A redelivered id (recorded already) changes nothing.
        assert await consumer.apply_batch([("a0", MEMBER_CREATED, events.MemberCreated(member_id="1")
                                            .SerializeToString())]) == [False]
    finally:
        await stopped(consumer, task)
    try:
        async with db.read() as session:
            recorded = set(await session.scalars(select(ProcessedMessage.msg_id)))
            owners = list(await session.scalars(select(Account.member_id)))
        assert sorted(owners, key=int) == [str(i) for i in range(1, 13)]  # each good member once
        assert {f"a{i}" for i in range(10)} | {"b0", "b2"} == recorded  # the poison one never recorded
        assert batches and max(len(b) for b in batches) > 1  # whole batches went through the sync handler
    finally:
        await db.dispose()


@pytest.mark.database("ledger")
async def test_a_batch_larger_than_the_servers_default_ack_window_arrives_whole(database_url, js):
    """A consumer asks the server to allow at least its batch unacked (``max_ack_pending``): a backlog of 1,500 comes
    as one fetched batch of 1,500 and one transaction, not 1,000 (the server's default) and 500."""
    db = await make_db(database_url, LEDGER_MIGRATIONS)
    batches: list[int] = []

    async def one(session, event):
        raise AssertionError("the whole batch goes to the batch handler")

    consumer = EventConsumer(db, js, durable="ledger-wide", stream=CUSTOMER_STREAM, handlers={MEMBER_CREATED: one},
                             model=ProcessedMessage, batch=1_500,
                             sync_batch_handler=lambda session, items: batches.append(len(items)))
    await consumer.ensure()
    acks = [await js.publish_async(MEMBER_CREATED, events.MemberCreated(member_id=str(i)).SerializeToString(),
                                   headers={"Nats-Msg-Id": f"w{i}"}) for i in range(1_500)]
    await asyncio.gather(*acks)
    await run_until_caught_up(consumer, js, timeout=30)
    try:
        assert batches == [1_500]
        async with db.read() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 1_500
    finally:
        await db.dispose()
