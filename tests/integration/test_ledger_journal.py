"""The journal: postings, balances that never go below zero, idempotency, batches, reversals, statements."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, Role
from services.ledger.config import LedgerSettings
from services.ledger.service import build_spec
from tests.support.identity import signed
from tests.support.ledger import ago, eventually, ledger_events, refused, timestamp, wait_for_events
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("ledger")


POINTS, BALANCE, RED = pb.ASSET_POINTS, pb.ASSET_BALANCE, pb.ASSET_RED_PACKET
EARN, SPEND, ADJUST, RECHARGE, REFUND = (pb.ENTRY_KIND_EARN, pb.ENTRY_KIND_SPEND, pb.ENTRY_KIND_ADJUST,
                                         pb.ENTRY_KIND_RECHARGE, pb.ENTRY_KIND_REFUND)
STAFF = signed(Caller(staff_id="clerk-7", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))


async def entries_of(ledger, member: str, asset: int) -> list[pb.Entry]:
    reply = await ledger.stub.ListEntries(pb.ListEntriesRequest(member_id=member, asset=asset, page_size=1000))
    return list(reply.entries)


async def test_postings_move_balances_record_entries_and_announce_them(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    recharge = await ledger.post("r-1", "1", BALANCE, RECHARGE, 10_000, mall_id="100", store_id="7",
                                 note="counter top-up", voucher="files/receipt-1.jpg",
                                 document_time=ago(hours=1))
    assert (recharge.amount, recharge.balance_after, recharge.kind) == (10_000, 10_000, RECHARGE)
    assert (recharge.mall_id, recharge.store_id, recharge.voucher) == ("100", "7", "files/receipt-1.jpg")
    spend = await ledger.stub.PostEntry(pb.PostEntryRequest(request_id="s-1", posting=pb.Posting(
        member_id="1", asset=BALANCE, kind=SPEND, amount=2_500, mall_id="100")), metadata=STAFF)
    assert (spend.entry.amount, spend.entry.balance_after, spend.entry.operator_id) == (-2_500, 7_500, "clerk-7")
    assert (await ledger.balance("1", BALANCE)).balance == 7_500
    assert (await ledger.balance("1", POINTS)).balance == 0

    entries = await entries_of(ledger, "1", BALANCE)
    assert [(e.kind, e.amount, e.balance_after) for e in entries] == [(SPEND, -2_500, 7_500),
                                                                      (RECHARGE, 10_000, 10_000)]
    assert entries[1].note == "counter top-up" and entries[1].document_time.ToSeconds() > 0

    posted = await wait_for_events(ledger.js, "ledger.entry.posted.v1", 2)
    assert [(e.member_id, e.asset, e.kind, e.amount, e.balance_after, e.mall_id) for e in posted] == [
        ("1", "ASSET_BALANCE", "ENTRY_KIND_RECHARGE", 10_000, 10_000, "100"),
        ("1", "ASSET_BALANCE", "ENTRY_KIND_SPEND", -2_500, 7_500, "100")]
    assert posted[1].entry_id == spend.entry.entry_id and posted[1].operator_id == "clerk-7"


async def test_a_spend_beyond_the_balance_is_refused_and_writes_nothing(ledger):
    await ledger.open_members("1")
    await ledger.post("r", "1", BALANCE, RECHARGE, 500)
    code, field = await refused(ledger.post("s", "1", BALANCE, SPEND, 501))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "posting.amount")
    assert (await ledger.balance("1", BALANCE)).balance == 500
    assert len(await entries_of(ledger, "1", BALANCE)) == 1
    # The refused request left no trace: the same id may carry the corrected request.
    spent = await ledger.post("s", "1", BALANCE, SPEND, 500)
    assert spent.balance_after == 0


async def test_a_repeated_request_id_returns_the_first_answer_and_a_different_body_is_already_exists(ledger):
    await ledger.open_members("1")
    first = await ledger.post("same", "1", RED, EARN, 800)
    again = await ledger.post("same", "1", RED, EARN, 800)
    assert again == first
    assert (await ledger.balance("1", RED)).balance == 800
    code, field = await refused(ledger.post("same", "1", RED, EARN, 801))
    assert (code, field) == (grpc.StatusCode.ALREADY_EXISTS, "request_id")
    code, field = await refused(ledger.post("", "1", RED, EARN, 5))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "request_id")
    assert len(await entries_of(ledger, "1", RED)) == 1


def _posting(**overrides) -> pb.Posting:
    fields = {"member_id": "1", "asset": BALANCE, "kind": RECHARGE, "amount": 100, **overrides}
    return pb.Posting(**fields)


BAD_POSTINGS = [
    (_posting(amount=0), grpc.StatusCode.INVALID_ARGUMENT, "posting.amount"),
    (_posting(amount=-5), grpc.StatusCode.INVALID_ARGUMENT, "posting.amount"),
    (_posting(amount=9 * 10**15 + 1), grpc.StatusCode.INVALID_ARGUMENT, "posting.amount"),
    (_posting(asset=0), grpc.StatusCode.INVALID_ARGUMENT, "posting.asset"),
    (_posting(asset=42), grpc.StatusCode.INVALID_ARGUMENT, "posting.asset"),
    (_posting(kind=0), grpc.StatusCode.INVALID_ARGUMENT, "posting.kind"),
    (_posting(kind=99), grpc.StatusCode.INVALID_ARGUMENT, "posting.kind"),
    (_posting(kind=pb.ENTRY_KIND_EXPIRE), grpc.StatusCode.INVALID_ARGUMENT, "posting.kind"),
    (_posting(kind=ADJUST), grpc.StatusCode.INVALID_ARGUMENT, "posting.direction"),
    (_posting(kind=ADJUST, direction=7), grpc.StatusCode.INVALID_ARGUMENT, "posting.direction"),
    (_posting(direction=pb.DIRECTION_DECREASE), grpc.StatusCode.INVALID_ARGUMENT, "posting.direction"),
    (_posting(asset=POINTS), grpc.StatusCode.INVALID_ARGUMENT, "posting.asset"),
    (_posting(member_id=""), grpc.StatusCode.INVALID_ARGUMENT, "posting.member_id"),
    (_posting(member_id="abc"), grpc.StatusCode.INVALID_ARGUMENT, "posting.member_id"),
    (_posting(member_id="404"), grpc.StatusCode.NOT_FOUND, "posting.member_id"),
    (_posting(mall_id="mall-1"), grpc.StatusCode.INVALID_ARGUMENT, "posting.mall_id"),
    (_posting(note="x" * 501), grpc.StatusCode.INVALID_ARGUMENT, "posting.note"),
    (_posting(reason_template_id="77"), grpc.StatusCode.NOT_FOUND, "posting.reason_template_id"),
    (_posting(document_time=timestamp(datetime.now(UTC) + timedelta(days=1))), grpc.StatusCode.INVALID_ARGUMENT,
     "posting.document_time"),
]


async def test_bad_input_is_refused_naming_the_field_and_writes_nothing(ledger):
    await ledger.open_members("1")
    for i, (posting, code, field) in enumerate(BAD_POSTINGS):
        got = await refused(ledger.stub.PostEntry(pb.PostEntryRequest(request_id=f"bad-{i}", posting=posting)))
        assert got == (code, field), posting
    for asset in (POINTS, BALANCE, RED):
        assert (await ledger.balance("1", asset)).balance == 0
        assert await entries_of(ledger, "1", asset) == []
    assert await ledger_events(ledger.js, "ledger.entry.posted.v1") == []


async def test_a_batch_posts_all_or_nothing(ledger):
    await ledger.open_members("1", "2")
    ok = await ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="import-1", postings=[
        _posting(member_id="1", amount=1_000), _posting(member_id="2", amount=2_000),
        _posting(member_id="1", kind=SPEND, amount=400),
        _posting(member_id="2", asset=POINTS, kind=EARN, amount=50)]))
    assert len(ok.entry_ids) == 4
    assert sorted((a.member_id, a.asset, a.balance) for a in ok.accounts) == [
        ("1", BALANCE, 600), ("2", POINTS, 50), ("2", BALANCE, 2_000)]

    # The third posting overdraws member 2: the first two must not stick either.
    code, field = await refused(ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="import-2", postings=[
        _posting(member_id="1", amount=5), _posting(member_id="2", kind=SPEND, amount=1_999),
        _posting(member_id="2", kind=SPEND, amount=2)])))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "postings[2].amount")
    code, field = await refused(ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="import-3", postings=[
        _posting(member_id="1", amount=5), _posting(member_id="9")])))
    assert (code, field) == (grpc.StatusCode.NOT_FOUND, "postings[1].member_id")
    code, field = await refused(ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="import-4", postings=[])))
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "postings")
    assert (await ledger.balance("1", BALANCE)).balance == 600
    assert (await ledger.balance("2", BALANCE)).balance == 2_000
    # A batch's entries are announced together, in posting order.
    [posted] = await wait_for_events(ledger.js, "ledger.entries.posted.v1", 1)
    assert [e.request_id for e in posted.entries] == ["import-1"] * 4
    assert [e.line for e in posted.entries] == [0, 1, 2, 3]
    assert [(e.entry_id, e.balance_after) for e in posted.entries] == [
        (i, b) for i, b in zip(ok.entry_ids, [1_000, 2_000, 600, 50], strict=True)]
    assert len(await ledger_events(ledger.js)) == 6 + 1  # six accounts opened, one event for the batch


async def test_a_large_batch_is_announced_in_events_of_a_thousand_entries(ledger):
    await ledger.open_members("1", "2")
    postings = [_posting(member_id=str(1 + i % 2), amount=1 + i) for i in range(2_500)]
    ok = await ledger.stub.PostEntries(pb.PostEntriesRequest(request_id="big", postings=postings))
    events = await wait_for_events(ledger.js, "ledger.entries.posted.v1", 3)
    assert [len(e.entries) for e in events] == [1_000, 1_000, 500]
    entries = [entry for e in events for entry in e.entries]
    assert [e.entry_id for e in entries] == list(ok.entry_ids)
    assert [e.line for e in entries] == list(range(2_500))
    assert [e.amount for e in entries] == [1 + i for i in range(2_500)]
    assert await ledger_events(ledger.js, "ledger.entry.posted.v1") == []


async def test_concurrent_spends_never_overdraw_an_account(ledger):
    await ledger.open_members("1")
    await ledger.post("r", "1", BALANCE, RECHARGE, 1_000)
    results = await asyncio.gather(*(ledger.post(f"s-{i}", "1", BALANCE, SPEND, 30) for i in range(60)),
                                   return_exceptions=True)
    ok = [r for r in results if isinstance(r, pb.Entry)]
    failed = [r for r in results if not isinstance(r, pb.Entry)]
    assert len(ok) == 33 and all(e.code() == grpc.StatusCode.FAILED_PRECONDITION for e in failed)
    assert sorted(e.balance_after for e in ok) == list(range(10, 1_000, 30))
    assert (await ledger.balance("1", BALANCE)).balance == 10


async def test_two_ledger_processes_on_one_database_never_overdraw(ledger, database_url, nats_url, tmp_path):
    """Replicas share the database: account locks (PostgreSQL) or the file lock (SQLite) keep spends honest."""
    await ledger.open_members("1")
    await ledger.post("r", "1", BALANCE, RECHARGE, 1_000)
    settings = LedgerSettings(grpc_port=0, metrics_port=0, database_url=database_url)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path / "two") as (_, channel):
        twin = pb_grpc.LedgerServiceStub(channel)
        stubs = [ledger.stub, twin]
        results = await asyncio.gather(*(stubs[i % 2].PostEntry(pb.PostEntryRequest(
            request_id=f"s-{i}", posting=_posting(kind=SPEND, amount=70))) for i in range(40)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, pb.PostEntryResponse)]
    assert len(ok) == 14 and all(r.code() == grpc.StatusCode.FAILED_PRECONDITION
                                 for r in results if not isinstance(r, pb.PostEntryResponse))
    assert sorted(r.entry.balance_after for r in ok) == list(range(20, 1_000, 70))
    assert (await ledger.balance("1", BALANCE)).balance == 20


async def test_a_reversal_points_at_its_entry_and_happens_once(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")  # the clerk's member
    await ledger.post("r", "1", BALANCE, RECHARGE, 700)
    wrong = await ledger.post("r-again", "1", BALANCE, RECHARGE, 700, mall_id="100")
    reversal = await ledger.stub.ReverseEntry(pb.ReverseEntryRequest(request_id="rev", entry_id=wrong.entry_id,
                                                                     note="keyed in twice"), metadata=STAFF)
    assert (reversal.entry.kind, reversal.entry.amount, reversal.entry.balance_after) == (pb.ENTRY_KIND_REVERSAL,
                                                                                        -700, 700)
    assert reversal.entry.note == "keyed in twice"
    assert reversal.entry.reversal_of_entry_id == wrong.entry_id and reversal.entry.operator_id == "clerk-7"
    code, field = await refused(ledger.stub.ReverseEntry(pb.ReverseEntryRequest(request_id="rev-2",
                                                                                entry_id=wrong.entry_id)))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "entry_id")
    code, field = await refused(ledger.stub.ReverseEntry(pb.ReverseEntryRequest(
        request_id="rev-3", entry_id=reversal.entry.entry_id)))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "entry_id")
    code, field = await refused(ledger.stub.ReverseEntry(pb.ReverseEntryRequest(request_id="rev-4", entry_id="999")))
    assert (code, field) == (grpc.StatusCode.NOT_FOUND, "entry_id")
    assert (await ledger.balance("1", BALANCE)).balance == 700

    # Reversing a recharge whose money is already spent is refused like any overdraft.
    topped = await ledger.post("r2", "1", BALANCE, RECHARGE, 100)
    await ledger.post("s2", "1", BALANCE, SPEND, 750)
    code, field = await refused(ledger.stub.ReverseEntry(pb.ReverseEntryRequest(request_id="rev-5",
                                                                                entry_id=topped.entry_id)))
    assert (code, field) == (grpc.StatusCode.FAILED_PRECONDITION, "entry_id")


async def test_disabled_members_cannot_use_points_or_red_packets(ledger):
    await ledger.open_members("1")
    await ledger.post("p", "1", POINTS, EARN, 100)
    await ledger.post("rp", "1", RED, EARN, 100)
    await ledger.post("b", "1", BALANCE, RECHARGE, 100)
    await ledger.set_status("1", disabled=True)

    async def refusal_names(field: str) -> bool:
        # An overdraft writes nothing either way; the field says why it was refused.
        code, named = await refused(ledger.post("probe", "1", POINTS, SPEND, 1_000))
        return code == grpc.StatusCode.FAILED_PRECONDITION and named == field

    await eventually(lambda: refusal_names("posting.member_id"))
    assert await refused(ledger.post("use-points", "1", POINTS, SPEND, 10)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                                 "posting.member_id")
    assert await refused(ledger.post("use-red", "1", RED, SPEND, 10)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                           "posting.member_id")
    assert await refused(ledger.post("earn", "1", POINTS, EARN, 10)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                          "posting.member_id")
    assert (await ledger.post("own-money", "1", BALANCE, SPEND, 10)).balance_after == 90  # stored value is theirs
    await ledger.set_status("1", disabled=False)
    await eventually(lambda: refusal_names("posting.amount"))
    assert (await ledger.post("use-points-2", "1", POINTS, SPEND, 10)).balance_after == 90
    assert (await ledger.balance("1", POINTS)).balance == 90


async def test_statements_filter_by_kind_time_and_mall_and_page(ledger):
    await ledger.open_malls()
    await ledger.open_members("1")
    for i in range(7):
        await ledger.post(f"r{i}", "1", BALANCE, RECHARGE, 100 + i, mall_id="100" if i % 2 else "200")
    await ledger.post("s", "1", BALANCE, SPEND, 50, mall_id="100")
    account_id = (await ledger.balance("1", BALANCE)).account_id

    seen, token = [], ""
    while True:
        page = await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id=account_id, page_size=3,
                                                                   page_token=token))
        seen += page.entries
        token = page.next_page_token
        if not token:
            break
    assert [e.amount for e in seen] == [-50, 106, 105, 104, 103, 102, 101, 100]

    recharges_at_100 = await ledger.stub.ListEntries(pb.ListEntriesRequest(
        account_id=account_id, kinds=[RECHARGE], mall_id="100"))
    assert [e.amount for e in recharges_at_100.entries] == [105, 103, 101]
    future = await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id=account_id, start_time=ago(hours=-1)))
    assert list(future.entries) == []
    recent = await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id=account_id, start_time=ago(hours=1),
                                                                 end_time=ago(hours=-1)))
    assert len(recent.entries) == 8

    first = await ledger.stub.ListEntries(pb.ListEntriesRequest(account_id=account_id, page_size=2))
    for bad, field in [(pb.ListEntriesRequest(account_id=account_id, page_size=2, page_token=first.next_page_token,
                                              mall_id="100"), "page_token"),
                       (pb.ListEntriesRequest(account_id=account_id, page_size=-1), "page_size"),
                       (pb.ListEntriesRequest(account_id=account_id, kinds=[42]), "kinds[0]"),
                       (pb.ListEntriesRequest(account_id=account_id, start_time=ago(hours=1), end_time=ago(hours=2)),
                        "end_time")]:
        assert await refused(ledger.stub.ListEntries(bad)) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    assert await refused(ledger.stub.ListEntries(pb.ListEntriesRequest(account_id="999"))) == (
        grpc.StatusCode.NOT_FOUND, "account_id")
    assert await refused(ledger.stub.ListEntries(pb.ListEntriesRequest(member_id="1"))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "asset")


@pytest.mark.parametrize("role", [Role.MEMBER])
async def test_members_cannot_post_directly(ledger, role):
    await ledger.open_members("1")
    member = signed(Caller(staff_id="1", role=role))
    code, field = await refused(ledger.stub.PostEntry(pb.PostEntryRequest(request_id="x", posting=_posting()),
                                                      metadata=member))
    assert (code, field) == (grpc.StatusCode.PERMISSION_DENIED, "role")


async def test_twins_of_one_request_in_flight_together_apply_once(ledger):
    await ledger.open_members("1")
    request = pb.PostEntryRequest(request_id="twin", posting=_posting(amount=250))
    other = pb.PostEntryRequest(request_id="twin", posting=_posting(amount=251))
    replies = await asyncio.gather(*(ledger.stub.PostEntry(request) for _ in range(12)))
    assert all(reply == replies[0] for reply in replies)
    mixed = await asyncio.gather(*(ledger.stub.PostEntry(r) for r in [request, other] * 6), return_exceptions=True)
    assert all(reply == replies[0] for reply in mixed[::2])
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.ALREADY_EXISTS
               for e in mixed[1::2])
    assert (await ledger.balance("1", BALANCE)).balance == 250
    assert len(await entries_of(ledger, "1", BALANCE)) == 1
