"""The group commit itself, in-process: requests submitted together share one batch, deterministically.

``submit`` queues synchronously, so requests gathered in one go are decided in the same batch.
That makes the batch's edge cases testable without timing: twins of one request_id, a
request that makes the whole batch fail, and batchable requests mixed with ordinary ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition
from services.ledger.commands import PostEntryCommand
from services.ledger.commit import GroupCommit
from services.ledger.convert import posted_to_proto
from services.ledger.inputs import parse_posting
from services.ledger.journal import Journal
from services.ledger.members import member_created
from services.ledger.models import IdempotencyRecord
from services.ledger.postings import Posting
from services.ledger.repository import AccountRepository

pytestmark = pytest.mark.database("ledger")


MIGRATIONS = Path("services/ledger/migrations")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, MIGRATIONS)
    await database.migrate()
    async with database.transaction() as session:
        for member in ("1", "2"):
            await member_created(session, customer_events.MemberCreated(member_id=member))
    try:
        yield database
    finally:
        await database.dispose()


def post(request_id: str, member: str, kind: int, amount: int, asset: int = pb.ASSET_BALANCE) -> PostEntryCommand:
    request = pb.PostEntryRequest(request_id=request_id, posting=pb.Posting(member_id=member, asset=asset, kind=kind,
                                                                            amount=amount))
    return PostEntryCommand(request, parse_posting(request.posting, "posting", datetime.now(UTC)), "tester")


def run_alone() -> float:
    return REGISTRY.get_sample_value("crowdpack_ledger_requests_run_alone_total") or 0.0


async def balance(db: Database, member: str, asset: int) -> int:
    async with db.read() as session:
        [account] = await AccountRepository(session).for_member(member, asset)
        return account.balance


async def test_twins_in_one_batch_apply_once_and_a_different_body_is_already_exists(db):
    commits = GroupCommit(db, IdempotencyRecord)
    before = run_alone()
    twins = [post("same", "1", pb.ENTRY_KIND_RECHARGE, 500) for _ in range(6)]
    other = post("same", "1", pb.ENTRY_KIND_RECHARGE, 501)
    results = await asyncio.gather(*(commits.submit(c) for c in [*twins, other]), return_exceptions=True)
    assert all(r == results[0] for r in results[:6]) and results[0].entry.amount == 500
    assert isinstance(results[6], AlreadyExists) and results[6].field == "request_id"
    assert run_alone() - before == 6  # the first decided in the batch; its twins read the answer it stored
    assert await balance(db, "1", pb.ASSET_BALANCE) == 500


async def test_each_request_of_a_batch_is_checked_against_the_ones_before_it(db):
    commits = GroupCommit(db, IdempotencyRecord)
    results = await asyncio.gather(
        commits.submit(post("r", "1", pb.ENTRY_KIND_RECHARGE, 100)),
        *(commits.submit(post(f"s{i}", "1", pb.ENTRY_KIND_SPEND, 30)) for i in range(5)), return_exceptions=True)
    spent = [r for r in results[1:] if not isinstance(r, Exception)]
    refused = [r for r in results[1:] if isinstance(r, Exception)]
    assert [e.entry.balance_after for e in spent] == [70, 40, 10]
    assert len(refused) == 2 and all(isinstance(e, FailedPrecondition) and e.field == "posting.amount"
                                     for e in refused)
    assert await balance(db, "1", pb.ASSET_BALANCE) == 10


async def test_a_request_that_breaks_the_batch_fails_alone_and_the_rest_commit(db):
    commits = GroupCommit(db, IdempotencyRecord)
    await commits.submit(post("earn", "1", pb.ENTRY_KIND_EARN, 100, pb.ASSET_POINTS))
    async with db.transaction() as session:  # the lots no longer cover member 1's points
        await session.execute(text("UPDATE points_lot SET remaining = 0"))
    before = run_alone()
    results = await asyncio.gather(
        commits.submit(post("bad", "1", pb.ENTRY_KIND_SPEND, 50, pb.ASSET_POINTS)),
        *(commits.submit(post(f"good-{i}", "2", pb.ENTRY_KIND_RECHARGE, 10)) for i in range(5)),
        return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert all(r.entry.amount == 10 for r in results[1:6])
    assert run_alone() - before == 6  # the batch failed as a whole; each request then ran by itself
    assert await balance(db, "2", pb.ASSET_BALANCE) == 50
    assert await balance(db, "1", pb.ASSET_POINTS) == 100
    async with db.read() as session:
        assert await session.scalar(text("SELECT count(*) FROM journal_entry WHERE request_id = 'bad'")) == 0


async def test_ordinary_jobs_run_after_the_batch_in_the_same_transaction_and_see_it(db):
    commits = GroupCommit(db, IdempotencyRecord)

    async def spend(session: AsyncSession) -> pb.PostEntryResponse:
        [entry] = await Journal(session, now=datetime.now(UTC), operator_id="tester").post("generic", [Posting(
            member_id="2", asset=pb.ASSET_BALANCE, kind=pb.ENTRY_KIND_SPEND, amount=-60, field="")])
        return pb.PostEntryResponse(entry=posted_to_proto(entry))

    recharge, spent = await asyncio.gather(
        commits.submit(post("r", "2", pb.ENTRY_KIND_RECHARGE, 100)),
        commits.idempotent("Generic", pb.PostEntryRequest(request_id="generic"), pb.PostEntryResponse, spend))
    assert (recharge.entry.balance_after, spent.entry.balance_after) == (100, 40)
    again = await commits.idempotent("Generic", pb.PostEntryRequest(request_id="generic"), pb.PostEntryResponse,
                                     spend)
    assert again == spent
    assert await balance(db, "2", pb.ASSET_BALANCE) == 40
