"""The shared write paths for bulk work: the single-hop writer, driver-level rows, bulk outbox events and
batch idempotency (services/common/db.py, bulk.py, outbox.py, idempotency.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common import bulk
from services.common.bulk import insert_rows, update_rows
from services.common.db import Database
from services.common.errors import AlreadyExists
from services.common.idempotency import request_hash, store_answers, stored_answers
from services.common.outbox import OutboxRelay, add_event, add_events
from services.ledger.models import Account, IdempotencyRecord, OutboxEvent

pytestmark = pytest.mark.database("ledger")


MIGRATIONS = Path("services/ledger/migrations")
ACCOUNTS = Account.__table__
OPENED = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def db(database_url):
    database = Database(database_url, MIGRATIONS)
    await database.migrate()
    yield database
    await database.dispose()


def add_account(session: Session, member: str, balance: int = 0) -> None:
    insert_rows(session.connection(), ACCOUNTS, ("member_id", "asset", "balance", "debt", "opened_at"),
                [(member, pb.ASSET_BALANCE, balance, 0, OPENED)])


async def balances(db: Database) -> dict[str, int]:
    async with db.read() as session:
        return {a.member_id: a.balance for a in await session.scalars(select(Account))}


async def test_a_sync_write_commits_when_it_returns_and_rolls_back_when_it_raises(db):
    commits = []
    db.on_commit(lambda: commits.append(1))
    assert await db.run_sync_write(lambda s: add_account(s, "1", 5) or "done") == "done"

    def fails(session: Session) -> None:
        add_account(session, "2")
        raise RuntimeError("the change fails: nothing of it may stay")

    with pytest.raises(RuntimeError):
        await db.run_sync_write(fails)
    assert await balances(db) == {"1": 5}
    assert commits == [1]


async def test_sync_writes_and_async_transactions_share_one_writer_without_lost_updates(db):
    await db.run_sync_write(lambda s: add_account(s, "1"))

    def bump(session: Session) -> None:
        session.execute(update(Account).values(balance=Account.balance + 1))

    async def bump_async() -> None:
        async with db.transaction() as session:
            await session.execute(update(Account).values(balance=Account.balance + 1))

    await asyncio.gather(*(db.run_sync_write(bump) if i % 2 else bump_async() for i in range(40)))
    assert await balances(db) == {"1": 40}


async def test_a_read_sees_one_snapshot_while_writes_commit_beside_it(db):
    await db.run_sync_write(lambda s: add_account(s, "1", 5))
    async with db.read() as session:
        first = await session.scalar(select(Account.balance).where(Account.member_id == "1"))
        async with db.transaction() as writer:
            await writer.execute(update(Account).where(Account.member_id == "1").values(balance=9))
            await writer.run_sync(lambda s: add_account(s, "2", 7))
        # Both commits landed between the read's two statements; the read still sees neither.
        again = await session.scalar(select(Account.balance).where(Account.member_id == "1"))
        count = await session.scalar(select(func.count()).select_from(Account))
    assert (first, again, count) == (5, 5, 1)
    assert await balances(db) == {"1": 9, "2": 7}


@pytest.mark.parametrize("run", ["run_sync_read", "run_core_read"])  # fn gets a Session, or a Connection
async def test_a_sync_read_sees_one_snapshot_and_passes_on_what_it_raises(db, database_url, run):
    run_read = getattr(db, run)
    await db.run_sync_write(lambda s: add_account(s, "1", 5))
    driver = "sqlite+pysqlite" if database_url.startswith("sqlite") else make_url(database_url).drivername
    other = create_engine(make_url(database_url).set(drivername=driver))

    def read(session: Session | Connection) -> tuple[int | None, int | None, int | None]:
        first = session.scalar(select(Account.balance).where(Account.member_id == "1"))
        with other.begin() as conn:  # another connection commits between the read's two statements
            conn.execute(update(Account).where(Account.member_id == "1").values(balance=9))
        again = session.scalar(select(Account.balance).where(Account.member_id == "1"))
        return first, again, session.scalar(select(func.count()).select_from(Account))

    try:
        assert await run_read(read) == (5, 5, 1)
    finally:
        other.dispose()
    assert await run_read(lambda s: s.scalar(select(Account.balance))) == 9

    def fails(_session: Session | Connection) -> None:
        raise LookupError("the caller gets this")

    with pytest.raises(LookupError, match="the caller gets this"):
        await run_read(fails)


async def test_a_cancelled_caller_does_not_cut_its_sync_write_short(db):
    cancelled = threading.Event()
    loop, loop_thread = asyncio.get_running_loop(), threading.current_thread()

    def cancel() -> None:
        task.cancel()
        cancelled.set()

    def slow(session: Session) -> None:
        add_account(session, "1", 7)
        # The caller is cancelled while the transaction is open. On SQLite fn runs on the writer's thread, which
        # waits here until the cancellation has landed; on PostgreSQL it runs on the event loop's own thread (a
        # greenlet), so the cancellation lands at the transaction's next await, its commit.
        loop.call_soon_threadsafe(cancel)
        if threading.current_thread() is not loop_thread:
            assert cancelled.wait(10), "the caller was never cancelled"

    task = asyncio.create_task(db.run_sync_write(slow))
    with pytest.raises(asyncio.CancelledError):
        await task
    # The transaction finished before the cancellation went on: it committed, and the writer is free.
    assert await balances(db) == {"1": 7}
    await db.run_sync_write(lambda s: add_account(s, "2"))
    assert await balances(db) == {"1": 7, "2": 0}


async def test_driver_level_rows_read_back_as_the_orm_wrote_them(db):
    later = OPENED + timedelta(days=1)

    def write(session: Session) -> int:
        insert_rows(session.connection(), ACCOUNTS, ("member_id", "asset", "balance", "debt", "opened_at"),
                    [(str(m), pb.ASSET_POINTS, m * 10, 0, OPENED if m < 3 else later) for m in range(1, 5)])
        session.add(Account(member_id="orm", asset=pb.ASSET_POINTS, balance=1, debt=0, opened_at=OPENED))
        session.flush()
        # Compare-and-set: member 4's expected balance is stale, so only three rows match.
        return update_rows(session.connection(), ACCOUNTS, ("balance",), ("member_id", "balance"),
                           [(11, "1", 10), (22, "2", 20), (33, "3", 30), (44, "4", 999)])

    assert await db.run_sync_write(write) == 3
    async with db.read() as session:
        rows = {a.member_id: a for a in await session.scalars(select(Account))}
        # Written by the driver or by the ORM, a time compares (and is found) the same way.
        same_time = await session.scalar(select(func.count()).select_from(Account)
                                         .where(Account.opened_at == OPENED))
    assert {m: a.balance for m, a in rows.items()} == {"1": 11, "2": 22, "3": 33, "4": 40, "orm": 1}
    assert same_time == 3
    assert rows["1"].opened_at.replace(tzinfo=UTC) == OPENED
    assert rows["4"].opened_at.replace(tzinfo=UTC) == later


async def test_bulk_rows_in_several_statements_keep_their_order_and_values(db, monkeypatch):
    # At most 3 rows per statement (ARRAY_ROWS on PostgreSQL, VALUES_ROWS on SQLite): 7 rows go in three.
    monkeypatch.setattr(bulk, "ARRAY_ROWS", 3)
    monkeypatch.setattr(bulk, "VALUES_ROWS", 3)
    blob = bytes(range(256))

    def write(session: Session) -> int:
        add_events(session, OutboxEvent, [events.AccountOpened(account_id=str(i)) for i in range(7)])
        insert_rows(session.connection(), OutboxEvent.__table__, ("msg_id", "subject", "payload", "created_at"),
                    [("blob", "x.v1", blob, OPENED)])
        insert_rows(session.connection(), ACCOUNTS, ("member_id", "asset", "balance", "debt", "opened_at"),
                    [(str(m), pb.ASSET_POINTS, m, 0, OPENED) for m in range(1, 8)])
        return update_rows(session.connection(), ACCOUNTS, ("balance", "debt"), ("member_id",),
                           [(m * 100, m, str(m)) for m in range(7, 0, -1)])

    assert await db.run_sync_write(write) == 7
    async with db.read() as session:
        payloads = (await session.scalars(select(OutboxEvent.payload).order_by(OutboxEvent.seq))).all()
        accounts = (await session.execute(select(Account.member_id, Account.balance, Account.debt))).all()
    assert [events.AccountOpened.FromString(p).account_id for p in payloads[:7]] == [str(i) for i in range(7)]
    assert payloads[7] == blob
    assert sorted(accounts, key=lambda a: int(a.member_id)) == [(str(m), m * 100, m) for m in range(1, 8)]


async def test_an_update_whose_keys_repeat_applies_each_row_in_turn(db):
    def write(session: Session) -> int:
        add_account(session, "1", 10)
        # Compare-and-set twice on one row: the second sees the first's balance.
        return update_rows(session.connection(), ACCOUNTS, ("balance",), ("member_id", "balance"),
                           [(11, "1", 10), (12, "1", 11), (99, "1", 10)])

    assert await db.run_sync_write(write) == 2
    assert await balances(db) == {"1": 12}


async def test_bulk_events_keep_their_order_after_single_ones_and_are_relayed_in_it(db, js):
    def write(session: Session) -> list[str]:
        add_event(session, OutboxEvent, events.AccountOpened(account_id="first"))
        ids = add_events(session, OutboxEvent, [events.AccountOpened(account_id=str(i)) for i in range(5)])
        add_events(session, OutboxEvent, [])
        return ids

    ids = await db.run_sync_write(write)
    assert len(set(ids)) == 5
    async with db.read() as session:
        rows = (await session.execute(select(OutboxEvent.msg_id, OutboxEvent.subject, OutboxEvent.payload)
                                      .order_by(OutboxEvent.seq))).all()
    assert [events.AccountOpened.FromString(r.payload).account_id for r in rows] == ["first", "0", "1", "2", "3", "4"]
    assert [r.msg_id for r in rows[1:]] == ids
    assert {r.subject for r in rows} == {"ledger.account.opened.v1"}
    assert await OutboxRelay(db, js, OutboxEvent).relay_once() == 6
    sub = await js.subscribe("ledger.account.opened.v1", ordered_consumer=True)
    got = [events.AccountOpened.FromString((await sub.next_msg(timeout=5)).data).account_id for _ in range(6)]
    assert got == ["first", "0", "1", "2", "3", "4"]


class Request:
    """One request of a batch, as the ledger's commands present it."""

    def __init__(self, request_id: str, amount: int, method: str = "PostEntry") -> None:
        self.request = pb.PostEntryRequest(request_id=request_id, posting=pb.Posting(member_id="1", amount=amount))
        self.request_id, self.method, self.hash = request_id, method, request_hash(self.request)
        self.response_cls = pb.PostEntryResponse


async def test_batch_idempotency_answers_repeats_and_refuses_other_bodies(db):
    first = [Request("a", 1), Request("b", 2)]

    def decide(session: Session, batch: list[Request]) -> list:
        answers = stored_answers(session, IdempotencyRecord, batch)
        new = [(r, pb.PostEntryResponse(entry=pb.Entry(entry_id=r.request_id, amount=r.request.posting.amount)))
               for r, answer in zip(batch, answers) if answer is None]
        store_answers(session, IdempotencyRecord, new)
        return answers

    assert await db.run_sync_write(lambda s: decide(s, first)) == [None, None]
    again = [Request("b", 2), Request("a", 1), Request("a", 9), Request("b", 2, method="AdjustBalance"),
             Request("c", 3)]
    answers = await db.run_sync_write(lambda s: decide(s, again))
    assert [a.entry.entry_id for a in answers[:2]] == ["b", "a"]
    assert answers[1].entry.amount == 1
    assert all(isinstance(a, AlreadyExists) and a.field == "request_id" for a in answers[2:4])
    assert answers[4] is None
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 3

    # A twin in one insert is a unique-key violation: the whole transaction fails, nothing is stored.
    with pytest.raises(IntegrityError):
        await db.run_sync_write(lambda s: store_answers(s, IdempotencyRecord, [
            (Request("d", 4), pb.PostEntryResponse()), (Request("d", 4), pb.PostEntryResponse())]))
    async with db.read() as session:
        assert await session.get(IdempotencyRecord, "d") is None
