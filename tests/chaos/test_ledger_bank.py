"""The bank test: many clients move money and points while the ledger is SIGKILLed; nothing is lost or doubled.

NATS and the ledger run as processes (on SQLite, and on PostgreSQL when configured). Client
threads make random recharges, spends, red packet grants and uses, manual adjustments, orders,
refunds and batches; a request that meets a dead ledger is retried with the same request_id
until it gets an answer, and applied requests are repeated on purpose (the same body must
answer the same, another body must be ALREADY_EXISTS). The ledger is killed twice mid-run and
restarted. At the end:

- every balance equals the sum of its entries (``crowdpack ledger verify`` agrees), and none is
  below zero;
- every balance equals what the clients' own answers add up to, and each request left exactly
  the entries its answer names: nothing was applied twice, nothing answered was lost;
- every event was published exactly once.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import nats
import pytest
from google.protobuf.message import Message
from sqlalchemy import create_engine, text

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.supervisor import Ports, System
from tests.support import identity
from tests.support.databases import Databases
from tests.support.inspect import database_url, scalar, stream_messages

pytestmark = pytest.mark.slow

MEMBERS = 12
CLIENTS = 6
OPS_PER_CLIENT = 70
KILLS_AT = (0.3, 0.65)  # of all operations done
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED)
REFUSALS = (grpc.StatusCode.FAILED_PRECONDITION,)
# The malls the bank's requests name, and their stores (the ledger refuses ids the customer service never announced).
STORES = {"100": [str(n) for n in range(1, 10)], "200": [str(n) for n in range(11, 20)]}
POINTS, BALANCE, RED = pb.ASSET_POINTS, pb.ASSET_BALANCE, pb.ASSET_RED_PACKET


@pytest.fixture
def ledger_system(backend: str, databases: Databases, tmp_path: Path) -> Iterator[System]:
    state = tmp_path / "state"
    state.mkdir()
    with ExitStack() as stack:
        urls = {"ledger": stack.enter_context(databases.fresh(backend, state, "ledger", service="ledger"))}
        system = System(state_dir=state, ports=Ports.free(), database_urls=urls,
                        env={"CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.1"})
        stack.callback(system.stop)
        system.start(("nats", "ledger"))
        yield system


@dataclass
class Book:
    """What the clients know: every answer they got."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    expected: Counter[tuple[str, int]] = field(default_factory=Counter)
    entries_of: dict[str, int] = field(default_factory=dict)  # request_id -> entries its answer names
    applied: int = 0
    refused: int = 0
    repeats: int = 0
    retries: int = 0  # calls that met a dead or restarting ledger
    done: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def record(self, request_id: str, changes: list[tuple[str, int, int]]) -> None:
        with self.lock:
            self.applied += 1
            self.entries_of[request_id] = len(changes)
            for member, asset, amount in changes:
                self.expected[(member, asset)] += amount


class Client:
    """One client: its own channel, its own orders, and patience while the ledger is away."""

    def __init__(self, number: int, system: System, book: Book) -> None:
        self.number = number
        self.system = system
        self.book = book
        self.rng = random.Random(1000 + number)
        self.orders: list[list[int | str]] = []  # [order_id, amount left to refund]
        self.channel = identity.sync_channel(system.processes["ledger"].address)
        self.stub = pb_grpc.LedgerServiceStub(self.channel)
        self.seq = 0

    def call(self, method: str, request: Message) -> Message | None:
        """The answer (None when refused), retrying with the same request_id until the ledger answers."""
        return self.call_refused(method, request, REFUSALS)

    def call_refused(self, method: str, request: Message, refusals: tuple[grpc.StatusCode, ...]) -> Message | None:
        """The answer, or None when the ledger refuses with one of ``refusals``; a dead ledger is waited for."""
        deadline = time.monotonic() + 90
        while True:
            try:
                return getattr(self.stub, method)(request, timeout=10)
            except grpc.RpcError as err:
                if err.code() in refusals:
                    return None
                if err.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise
                with self.book.lock:
                    self.book.retries += 1
                # A fresh channel skips the reconnect backoff once the ledger is back.
                self.channel.close()
                self.channel = identity.sync_channel(self.system.processes["ledger"].address)
                self.stub = pb_grpc.LedgerServiceStub(self.channel)
                time.sleep(0.05)

    def apply(self, method: str, request: Message, changes: Callable[[Message], list[tuple[str, int, int]]]) -> None:
        reply = self.call(method, request)
        if reply is None:
            with self.book.lock:
                self.book.refused += 1
            return
        self.book.record(request.request_id, changes(reply))  # type: ignore[attr-defined]
        if self.rng.random() < 0.3:  # the same request again: the same answer, no second effect
            assert self.call(method, request) == reply, f"{method} {request.request_id} answered differently"
            with self.book.lock:
                self.book.repeats += 1
        if self.rng.random() < 0.05:  # the same id with another body
            other = type(request)()
            other.CopyFrom(request)
            other.request_id = request.request_id  # type: ignore[attr-defined]
            if isinstance(other, pb.PostEntryRequest):
                other.posting.amount += 1
            elif isinstance(other, pb.RecordOrderRequest):
                other.amount += 1
            else:
                return
            # The ledger may be killed under this call too: wait for it like any other, and expect the refusal.
            answer = self.call_refused(method, other, (grpc.StatusCode.ALREADY_EXISTS,))
            assert answer is None, f"{method} {request.request_id} with another body was applied"

    def next_id(self, what: str) -> str:
        self.seq += 1
        return f"c{self.number}-{what}-{self.seq}"

    def member(self) -> str:
        return str(self.rng.randint(1, MEMBERS))

    def one_operation(self, reason_template_id: str) -> None:
        rng = self.rng
        op = rng.choices(["recharge", "spend", "red", "adjust", "order", "refund", "batch"],
                         weights=[18, 22, 8, 10, 20, 12, 10])[0]
        entry = lambda r: [(r.entry.member_id, r.entry.asset, r.entry.amount)]  # noqa: E731 - read beside its twin
        entries = lambda r: [(e.member_id, e.asset, e.amount) for e in r.entries]  # noqa: E731 - as above
        if op == "recharge":
            self.apply("PostEntry", pb.PostEntryRequest(request_id=self.next_id(op), posting=pb.Posting(
                member_id=self.member(), asset=BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=rng.randint(100, 5_000))),
                entry)
        elif op == "spend":
            self.apply("PostEntry", pb.PostEntryRequest(request_id=self.next_id(op), posting=pb.Posting(
                member_id=self.member(), asset=rng.choice([BALANCE, RED, POINTS]), kind=pb.ENTRY_KIND_SPEND,
                amount=rng.randint(20, 3_000))), entry)
        elif op == "red":
            self.apply("PostEntry", pb.PostEntryRequest(request_id=self.next_id(op), posting=pb.Posting(
                member_id=self.member(), asset=RED, kind=pb.ENTRY_KIND_EARN, amount=rng.randint(100, 2_000),
                mall_id="100")), entry)
        elif op == "adjust":
            self.apply("AdjustBalance", pb.AdjustBalanceRequest(
                request_id=self.next_id(op), member_id=self.member(), asset=rng.choice([POINTS, RED, BALANCE]),
                direction=rng.choice([pb.DIRECTION_INCREASE, pb.DIRECTION_DECREASE]), value=rng.randint(10, 800),
                reason_template_id=reason_template_id, mall_id=rng.choice(["100", "200"])), entry)
        elif op == "order" or (op == "refund" and not self.orders):
            amount = rng.randint(1_000, 60_000)
            mall = rng.choice(sorted(STORES))
            request = pb.RecordOrderRequest(
                request_id=self.next_id("order"), member_id=self.member(), mall_id=mall,
                store_id=rng.choice(STORES[mall]),
                channel=rng.choice([pb.ORDER_CHANNEL_POS, pb.ORDER_CHANNEL_FAST_POINTS]),
                external_order_no=f"c{self.number}-{self.seq}", amount=amount,
                paid_amount=rng.randint(amount // 2, amount))
            request.occur_time.FromDatetime(datetime.now(UTC))
            reply = self.call("RecordOrder", request)
            assert reply is not None
            self.book.record(request.request_id, entries(reply))
            self.orders.append([reply.order.order_id, amount])
        elif op == "refund":
            order = rng.choice(self.orders)
            if order[1] == 0:
                return
            amount = rng.randint(1, int(order[1]))
            request = pb.RefundOrderRequest(request_id=self.next_id(op), order_id=str(order[0]), amount=amount)
            reply = self.call("RefundOrder", request)
            assert reply is not None
            order[1] = int(order[1]) - amount
            self.book.record(request.request_id, entries(reply))
        else:
            postings = []
            for _ in range(rng.randint(3, 6)):
                kind = rng.choice([pb.ENTRY_KIND_RECHARGE, pb.ENTRY_KIND_SPEND])
                postings.append(pb.Posting(member_id=self.member(), asset=BALANCE, kind=kind,
                                           amount=rng.randint(50, 2_500)))
            sign = {pb.ENTRY_KIND_RECHARGE: 1, pb.ENTRY_KIND_SPEND: -1}
            self.apply("PostEntries", pb.PostEntriesRequest(request_id=self.next_id(op), postings=postings),
                       lambda _r: [(p.member_id, p.asset, sign[p.kind] * p.amount) for p in postings])

    def run(self, reason_template_id: str) -> None:
        try:
            for _ in range(OPS_PER_CLIENT):
                self.one_operation(reason_template_id)
                with self.book.lock:
                    self.book.done += 1
        except BaseException as err:  # noqa: BLE001 - reported to the test thread
            self.book.errors.append(err)
        finally:
            self.channel.close()


def open_members(system: System) -> None:
    async def publish() -> None:
        nc = await nats.connect(system.nats_url)
        js = nc.jetstream()
        for m in range(1, MEMBERS + 1):
            await js.publish("customer.member.created.v1", customer_events.MemberCreated(
                member_id=str(m)).SerializeToString(), headers={"Nats-Msg-Id": f"bank-member-{m}"})
        for mall, stores in STORES.items():
            await js.publish("customer.mall.changed.v1", customer_events.MallChanged(
                mall_id=mall, name=f"Mall {mall}").SerializeToString(), headers={"Nats-Msg-Id": f"bank-mall-{mall}"})
            for store in stores:
                await js.publish("customer.store.changed.v1", customer_events.StoreChanged(
                    store_id=store, mall_id=mall, name=f"Store {store}").SerializeToString(),
                    headers={"Nats-Msg-Id": f"bank-store-{store}"})
        await nc.close()

    asyncio.run(publish())
    stores = sum(len(s) for s in STORES.values())
    wait_until(lambda: scalar(system, "ledger", "SELECT count(*) FROM store_state") == stores, 60,
               "the ledger to know the malls' stores")
    with identity.sync_channel(system.processes["ledger"].address) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        deadline = time.monotonic() + 60
        while True:
            try:
                stub.GetBalances(pb.GetBalancesRequest(member_id=str(MEMBERS)), timeout=5)
                return
            except grpc.RpcError:
                assert time.monotonic() < deadline, "the ledger never opened the members' accounts"
                time.sleep(0.1)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def ledger_url(system: System) -> str:
    return system.database_urls.get("ledger") or f"sqlite+aiosqlite:///{system.state_dir / 'ledger.db'}"


def test_the_bank_survives_sigkill_without_losing_or_doubling_a_cent(ledger_system):
    system = ledger_system
    open_members(system)
    with identity.sync_channel(system.processes["ledger"].address) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        stub.SetPointsRule(pb.SetPointsRuleRequest(request_id="bank-rule", rule=pb.PointsRule(
            points_per_yuan=1, level_multiplier_permille={0: 1500})))
        reason = stub.CreateReasonTemplate(pb.CreateReasonTemplateRequest(
            request_id="bank-reason", name="盘点调整")).reason_template.reason_template_id

    book = Book()
    clients = [Client(n, system, book) for n in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, args=(reason,)) for c in clients]
    for t in threads:
        t.start()
    total = CLIENTS * OPS_PER_CLIENT
    for share in KILLS_AT:
        wait_until(lambda s=share: book.done >= total * s or book.errors, 120, f"{share:.0%} of the operations")
        retries = book.retries
        system.processes["ledger"].kill()
        wait_until(lambda r=retries: book.retries > r or book.errors, 60, "a client to find the ledger gone")
        system.start(("ledger",))
    for t in threads:
        t.join(180)
    assert not book.errors, book.errors
    assert book.done == total
    assert book.applied > total // 2 and book.refused > 0 and book.repeats > 0
    assert book.retries > 0  # the kills did land in the middle of requests

    # Every balance is what the answers add up to, and none is negative.
    with identity.sync_channel(system.processes["ledger"].address) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        actual = {}
        for m in range(1, MEMBERS + 1):
            for account in stub.GetBalances(pb.GetBalancesRequest(member_id=str(m)), timeout=10).accounts:
                actual[(account.member_id, account.asset)] = account.balance
    expected = {key: book.expected.get(key, 0) for key in actual}
    assert actual == expected
    assert all(balance >= 0 for balance in actual.values())
    assert scalar(system, "ledger", "SELECT count(*) FROM account WHERE balance < 0 OR debt < 0") == 0

    # Each answered request left exactly the entries its answer names; nothing else was written.
    counts: dict[str, int] = defaultdict(int)
    engine = create_engine(database_url(system, "ledger"))
    try:
        with engine.connect() as conn:
            per_request = text("SELECT request_id, count(*) FROM journal_entry GROUP BY request_id")
            for request_id, n in conn.execute(per_request):
                counts[request_id] = n
    finally:
        engine.dispose()
    assert dict(counts) == {rid: n for rid, n in book.entries_of.items() if n}
    assert scalar(system, "ledger", "SELECT count(*) FROM idempotency_record") == len(book.entries_of) + 2

    # The ledger agrees with itself.
    verified = subprocess.run([sys.executable, "-m", "services.cli", "ledger", "verify", "--database-url",
                               ledger_url(system)], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Every event was published, once: the stream holds exactly the outbox.
    wait_until(lambda: scalar(system, "ledger", "SELECT count(*) FROM outbox_event WHERE published_at IS NULL") == 0,
               60, "the outbox to drain")
    assert stream_messages(system, "LEDGER") == scalar(system, "ledger", "SELECT count(*) FROM outbox_event")
