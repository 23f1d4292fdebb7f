"""Points lots and expiry (oldest first, never counted twice), and ``crowdpack ledger verify`` catching a mismatch."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from tests.support.ledger import refused, wait_for_events

pytestmark = pytest.mark.database("ledger")


POINTS, BALANCE = pb.ASSET_POINTS, pb.ASSET_BALANCE
EARN, SPEND = pb.ENTRY_KIND_EARN, pb.ENTRY_KIND_SPEND


async def crowdpack(*args: str) -> tuple[int, str]:
    """Runs the crowdpack command; returns its exit code and everything it printed."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode()


async def tamper(database_url: str, sql: str) -> None:
    """Changes the ledger behind its back, as a faulty script or a manual fix would.

    In a thread: the service runs on this event loop, and a write it has begun can only commit while the loop runs.
    """
    await asyncio.to_thread(change_behind_its_back, database_url, sql)


def change_behind_its_back(database_url: str, sql: str) -> None:
    url = make_url(database_url)
    url = url.set(drivername="sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg")
    # On SQLite, wait for the service's writer (its relay, its consumers) as long as the service itself would.
    engine = create_engine(url, connect_args={"timeout": 30} if url.get_backend_name() == "sqlite" else {})
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


async def test_points_expire_by_lot_oldest_spent_first_and_never_twice(ledger, database_url):
    await ledger.open_malls()
    await ledger.open_members("1", "2")
    for request_id, mall, days in [("r-100", "100", 10), ("r-200", "200", 40)]:
        await ledger.stub.SetPointsRule(pb.SetPointsRuleRequest(request_id=request_id, rule=pb.PointsRule(
            mall_id=mall, points_per_yuan=1, expiry_days=days)))
    await ledger.post("earn-a", "1", POINTS, EARN, 100, mall_id="100")   # lot A: expires in 10 days
    await ledger.post("earn-b", "1", POINTS, EARN, 50, mall_id="200")    # lot B: expires in 40 days
    await ledger.post("spend", "1", POINTS, SPEND, 120)                  # all of A, then 20 of B
    await ledger.post("earn-c", "2", POINTS, EARN, 70, mall_id="100")
    await ledger.post("earn-d", "2", POINTS, EARN, 5, mall_id="300")     # no rule for 300 or default: never expires
    now = datetime.now(UTC)

    code, out = await crowdpack("ledger", "expire", "--database-url", database_url,
                                "--as-of", (now + timedelta(days=11)).isoformat())
    assert code == 0, out
    assert "expired 70 points from 1 lot(s) in 1 account(s)" in out  # A was all spent: only member 2's lot C
    assert (await ledger.balance("1", POINTS)).balance == 30
    assert (await ledger.balance("2", POINTS)).balance == 5
    code, out = await crowdpack("ledger", "expire", "--database-url", database_url,
                                "--as-of", (now + timedelta(days=11)).isoformat())
    assert (code, "expired 0 points" in out) == (0, True)

    code, out = await crowdpack("ledger", "expire", "--database-url", database_url,
                                "--as-of", (now + timedelta(days=41)).isoformat())
    assert "expired 30 points from 1 lot(s) in 1 account(s)" in out, out
    assert (await ledger.balance("1", POINTS)).balance == 0
    assert (await ledger.balance("2", POINTS)).balance == 5
    entries = await ledger.stub.ListEntries(pb.ListEntriesRequest(member_id="1", asset=POINTS,
                                                                  kinds=[pb.ENTRY_KIND_EXPIRE]))
    expired = [(e.amount, e.balance_after, e.operator_id) for e in entries.entries]
    assert expired == [(-30, 0, "system:expire")]
    # The running service publishes what the job wrote.
    posted = await wait_for_events(ledger.js, "ledger.entry.posted.v1", 7)
    assert sorted((e.member_id, e.amount) for e in posted if e.kind == "ENTRY_KIND_EXPIRE") == [
        ("1", -30), ("2", -70)]
    code, out = await crowdpack("ledger", "verify", "--database-url", database_url)
    assert code == 0, out
    assert "ok:" in out


async def test_verify_exits_non_zero_naming_every_mismatch(ledger, database_url):
    await ledger.open_members("1")
    await ledger.post("r", "1", BALANCE, pb.ENTRY_KIND_RECHARGE, 1_000)
    await ledger.post("p", "1", POINTS, EARN, 40)
    code, out = await crowdpack("ledger", "verify", "--database-url", database_url)
    assert code == 0, out

    await tamper(database_url, f"UPDATE account SET balance = balance + 1 WHERE member_id = '1' AND asset = {BALANCE}")
    await tamper(database_url, "UPDATE points_lot SET remaining = remaining - 1")
    code, out = await crowdpack("ledger", "verify", "--database-url", database_url)
    assert code == 1
    assert "balance 1001 but its entries sum to 1000" in out
    assert "balance 40 but its lots hold 39" in out
    # The tampered balance still refuses to go negative, and the CHECK constraint backs the code.
    assert await refused(ledger.post("s", "1", BALANCE, SPEND, 1_002)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                           "posting.amount")


async def test_a_request_that_breaks_its_batch_fails_alone_and_the_others_commit(ledger, database_url):
    await ledger.open_members("1", "2")
    await ledger.post("p", "1", POINTS, EARN, 100)
    # The lots no longer cover member 1's points: spending them cannot be written consistently.
    await tamper(database_url, "UPDATE points_lot SET remaining = 0")
    results = await asyncio.gather(ledger.post("bad", "1", POINTS, SPEND, 50),
                                   *(ledger.post(f"good-{i}", "2", BALANCE, pb.ENTRY_KIND_RECHARGE, 10)
                                     for i in range(8)), return_exceptions=True)
    assert isinstance(results[0], grpc.aio.AioRpcError) and results[0].code() == grpc.StatusCode.INTERNAL
    assert all(isinstance(r, pb.Entry) for r in results[1:]), results[1:]
    assert (await ledger.balance("2", BALANCE)).balance == 80
    assert (await ledger.balance("1", POINTS)).balance == 100
