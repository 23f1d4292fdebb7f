"""Ledger benchmark: durable postings through gRPC, batch posting, and orders end to end with their events.

Run with ``python -m tests.bench.bench_ledger`` (``make bench``). NATS and the ledger run as
their own processes (``services.supervisor.System``), exactly as deployed; the clients run
here. SQLite always; PostgreSQL too when ``CROWDPACK_TEST_POSTGRES_URL`` is set (a fresh
database is created and dropped). Every figure is checked: the ledger is verified afterwards,
and the order events are counted as they arrive on NATS.

The baselines: a do-nothing RPC on the same server (the most any RPC can do here) and, for batch
posting on SQLite, plain SQL (``plain_sql_batches``): the same batches written by a hand-written
sqlite3 loop that keeps balances and points lots and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import nats
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.db import Database
from services.ledger.commands import PostEntriesCommand, PostEntryCommand, RecordOrderCommand
from services.ledger.commit import GroupCommit
from services.ledger.inputs import parse_order, parse_posting
from services.ledger.models import IdempotencyRecord, MallState, StoreState
from services.ledger.verify import verify
from services.supervisor import Ports, System
from tests.bench.common import SQLITE_TIME, cpu_model, log, plain_sqlite
from tests.support import identity
from tests.support.databases import POSTGRES_ENV, fresh_database, postgres_admin_url
from tests.support.inspect import scalar

GOALS = {"single": 2_000, "batch": 50_000, "orders": 1_000}
# The mall the orders and postings name, and its stores (the ledger refuses ids the customer service never announced).
MALL, STORES = "100", [str(n) for n in range(1, 41)]
PLAIN_ENTRY = ("INSERT INTO journal_entry (id, request_id, line, account_id, kind, amount, balance_after, reason, "
               "note, voucher, mall_id, store_id, operator_id, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, '', '', '', ?, '', 'bench', ?)")
PLAIN_LOT = "INSERT INTO points_lot (account_id, entry_id, amount, remaining, earned_at) VALUES (?, ?, ?, ?, ?)"


def load() -> str:
    """The machine's 1-minute load average: other work on the same cores moves every figure."""
    return f"load {os.getloadavg()[0]:.1f}"


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process ``pid`` so far, or of this process when ``pid`` is None."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuPerCall:
    """CPU per call of the server process and of the clients (this process) over one phase, in µs."""

    server_pid: int
    server: float = 0.0
    client: float = 0.0

    async def measure(self, n: int, phase: Awaitable[float]) -> float:
        server, client = cpu_seconds(self.server_pid), cpu_seconds()
        rate = await phase
        self.server = (cpu_seconds(self.server_pid) - server) / n * 1e6
        self.client = (cpu_seconds() - client) / n * 1e6
        log(f"  CPU per call: server {self.server:,.0f} µs, clients {self.client:,.0f} µs")
        return rate

    def __str__(self) -> str:
        return f"{self.server:,.0f} / {self.client:,.0f} µs"


@dataclass
class Result:
    backend: str
    ceiling: float
    single: float
    batch: float
    orders: float
    engine: dict[str, float]
    batches_of: int
    problems: int
    cpu: dict[str, CpuPerCall]


async def bench_engine(db: Database, args: argparse.Namespace, backend: str) -> dict[str, float]:
    """The group commit and the journal alone, in this process: the same work without gRPC or NATS."""
    commits = GroupCommit(db, IdempotencyRecord)
    rng = random.Random(11)
    member = lambda: str(rng.randint(1, args.members))  # noqa: E731 - a one-line picker
    now = datetime.now(UTC)
    async with db.transaction() as session:  # what the places consumer stores (already there after a system run)
        await session.merge(MallState(mall_id=MALL, name=MALL, timezone="Asia/Shanghai", deleted=False,
                                      changed_at=now))
        for store in STORES:
            await session.merge(StoreState(store_id=store, mall_id=MALL, name=store, category="", business_format="",
                                           brand="", deleted=False, changed_at=now))

    async def post(i: int) -> None:
        request = pb.PostEntryRequest(request_id=f"engine-post-{i}", posting=pb.Posting(
            member_id=member(), asset=pb.ASSET_BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=100))
        await commits.submit(PostEntryCommand(request, parse_posting(request.posting, "posting", now), "bench"))

    async def record(i: int) -> None:
        request = pb.RecordOrderRequest(
            request_id=f"engine-order-{i}", member_id=member(), mall_id=MALL, store_id=STORES[0],
            channel=pb.ORDER_CHANNEL_POS, external_order_no=f"engine-{i}", amount=10_000, paid_amount=10_000)
        request.occur_time.FromDatetime(now)
        await commits.submit(RecordOrderCommand(request, parse_order(request, now), "bench"))

    async def batch(i: int) -> None:
        request = pb.PostEntriesRequest(request_id=f"engine-batch-{i}", postings=[pb.Posting(
            member_id=member(), asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_EARN, amount=5, mall_id="100")
            for _ in range(args.batch_size)])
        postings = [parse_posting(p, f"postings[{j}]", now) for j, p in enumerate(request.postings)]
        await commits.submit(PostEntriesCommand(request, postings, "bench"))

    log(f"{backend}: the engine alone (no gRPC), {args.clients} concurrent callers")
    rates = {"single": await run_clients(args.posts // 2, args.clients, post, "engine posts"),
             "orders": await run_clients(args.orders // 2, args.clients, record, "engine orders"),
             "batch": await run_clients(max(2, args.batches // 2), 1, batch, "engine batches") * args.batch_size}
    log("  " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()))
    return rates


def plain_sql_batches(path: Path, args: argparse.Namespace) -> float:
    """The baseline for batch posting: the same batches by plain SQL on SQLite; returns entries/s.

    A fresh database with the ledger's schema (its migrations: the same indexes and checks) and
    the service's settings (WAL, ``synchronous=FULL``), one POINTS account per member. Each batch
    is one transaction: lock, read the balances, insert the entries with their balance after and
    a points lot each, write the balances back, commit. No checks, no idempotency record, no
    events, no gRPC: the least a ledger that keeps balances and lots writes per entry.
    """
    conn = plain_sqlite(path, Path("services/ledger/migrations"))
    now = datetime.now(UTC).strftime(SQLITE_TIME)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO account (member_id, asset, balance, debt, opened_at) VALUES (?, ?, 0, 0, ?)",
                     [(str(m), pb.ASSET_POINTS, now) for m in range(1, args.members + 1)])
    conn.execute("COMMIT")
    rng = random.Random(7)
    started = time.perf_counter()
    for b in range(args.batches):
        postings = [(str(rng.randint(1, args.members)), 1 + j % 50) for j in range(args.batch_size)]
        conn.execute("BEGIN IMMEDIATE")
        accounts = {member: [account_id, balance] for account_id, member, balance in conn.execute(
            "SELECT id, member_id, balance FROM account WHERE asset = ?", (pb.ASSET_POINTS,))}
        (entry_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM journal_entry").fetchone()
        entries, lots = [], []
        for line, (member, amount) in enumerate(postings):
            account = accounts[member]
            account[1] += amount
            entry_id += 1
            entries.append((entry_id, f"plain-{b}", line, account[0], pb.ENTRY_KIND_EARN, amount, account[1], "100",
                            now))
            lots.append((account[0], entry_id, amount, amount, now))
        conn.executemany(PLAIN_ENTRY, entries)
        conn.executemany(PLAIN_LOT, lots)
        conn.executemany("UPDATE account SET balance = ? WHERE id = ?",
                         [(balance, account_id) for account_id, balance in accounts.values()])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    (wrong,) = conn.execute(
        "SELECT count(*) FROM account a "
        "WHERE balance != (SELECT coalesce(sum(amount), 0) FROM journal_entry e WHERE e.account_id = a.id)").fetchone()
    conn.close()
    if wrong:
        raise RuntimeError(f"plain SQL left {wrong} balance(s) unequal to their entries")
    return args.batches * args.batch_size / elapsed


async def run_clients(n: int, clients: int, call: Callable[[int], Awaitable[None]], what: str) -> float:
    """Makes ``n`` calls from ``clients`` concurrent clients; returns calls per second."""
    counter = iter(range(n))
    done = 0
    start = time.perf_counter()

    async def client() -> None:
        nonlocal done
        for i in counter:
            await call(i)
            done += 1

    async def progress() -> None:
        while True:
            await asyncio.sleep(2)
            log(f"  {what}: {done:,}/{n:,} ({done / (time.perf_counter() - start):,.0f}/s)")

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        reporter.cancel()
    rate = n / (time.perf_counter() - start)
    log(f"  {what}: {rate:,.0f}/s ({load()})")
    return rate


async def open_members(system: System, stub: pb_grpc.LedgerServiceStub, members: int) -> None:
    """Announces the members, the mall and its stores, and waits until the ledger knows them all."""
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    await asyncio.gather(*(js.publish("customer.member.created.v1",
                                      customer_events.MemberCreated(member_id=str(m)).SerializeToString(),
                                      headers={"Nats-Msg-Id": f"bench-member-{m}"}) for m in range(1, members + 1)))
    await js.publish("customer.mall.changed.v1", customer_events.MallChanged(mall_id=MALL).SerializeToString())
    for store in STORES:
        await js.publish("customer.store.changed.v1", customer_events.StoreChanged(
            store_id=store, mall_id=MALL).SerializeToString())
    await nc.close()
    while True:
        try:
            await stub.GetBalances(pb.GetBalancesRequest(member_id=str(members)))
            break
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.2)
    while scalar(system, "ledger", "SELECT count(*) FROM store_state") < len(STORES):
        await asyncio.sleep(0.2)


async def bench_backend(backend: str, args: argparse.Namespace, state: Path, database_url: str | None) -> Result:
    system = System(state_dir=state, ports=Ports.free(),
                    database_urls={"ledger": database_url} if database_url else {},
                    env={"CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.1", "CROWDPACK_LOG_LEVEL": "WARNING"})
    system.start(("nats", "ledger"))
    try:
        address = system.processes["ledger"].address
        channel = identity.channel(address)
        stub = pb_grpc.LedgerServiceStub(channel)
        log(f"{backend}: opening {args.members:,} members (three accounts each)")
        await open_members(system, stub, args.members)
        rng = random.Random(7)
        member = lambda: str(rng.randint(1, args.members))  # noqa: E731 - a one-line picker - a one-line picker

        log(f"{backend}: the reference: gRPC health checks on the same server, {args.clients} clients")
        health = health_pb2_grpc.HealthStub(channel)

        async def check(_i: int) -> None:
            await health.Check(health_pb2.HealthCheckRequest())

        server_pid = system.processes["ledger"].popen.pid  # type: ignore[union-attr]
        cpu = {"health": CpuPerCall(server_pid), "single": CpuPerCall(server_pid)}
        ceiling = await cpu["health"].measure(args.posts // 2, run_clients(args.posts // 2, args.clients, check,
                                                                           "health checks"))
        log(f"  {ceiling:,.0f} calls/s: the most any RPC can do on this machine")

        log(f"{backend}: single-entry PostEntry, {args.clients} concurrent clients, {args.posts:,} requests")

        async def post(i: int) -> None:
            await stub.PostEntry(pb.PostEntryRequest(request_id=f"post-{i}", posting=pb.Posting(
                member_id=member(), asset=pb.ASSET_BALANCE, kind=pb.ENTRY_KIND_RECHARGE, amount=100 + i % 900)))

        await run_clients(min(500, args.posts), args.clients, lambda i: post(args.posts + i), "warm-up")
        single = await cpu["single"].measure(args.posts, run_clients(args.posts, args.clients, post, "single posts"))
        log(f"  {single:,.0f} posts/s")

        log(f"{backend}: PostEntries, {args.batches} batches of {args.batch_size:,} postings")

        async def batch(i: int) -> None:
            postings = [pb.Posting(member_id=member(), asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_EARN,
                                   amount=1 + j % 50, mall_id="100") for j in range(args.batch_size)]
            reply = await stub.PostEntries(pb.PostEntriesRequest(request_id=f"batch-{i}", postings=postings),
                                           timeout=120)
            assert len(reply.entry_ids) == args.batch_size

        batch_rate = await run_clients(args.batches, 2, batch, "batches") * args.batch_size
        log(f"  {batch_rate:,.0f} entries/s")

        log(f"{backend}: RecordOrder end to end, {args.clients} concurrent clients, {args.orders:,} orders, "
            "timed until every ledger.order.recorded event has arrived")
        nc = await nats.connect(system.nats_url)
        arrived: set[str] = set()
        all_in = asyncio.Event()

        async def on_event(msg) -> None:  # type: ignore[no-untyped-def]
            event = ledger_events.OrderRecorded.FromString(msg.data)
            if event.external_order_no.startswith("bench-"):
                arrived.add(event.external_order_no)
                if len(arrived) >= args.orders:
                    all_in.set()

        await nc.subscribe("ledger.order.recorded.v1", cb=on_event)
        now = datetime.now(UTC)

        async def record(i: int) -> None:
            request = pb.RecordOrderRequest(
                request_id=f"order-{i}", member_id=member(), mall_id=MALL, store_id=STORES[i % len(STORES)],
                channel=pb.ORDER_CHANNEL_POS, external_order_no=f"bench-{i}", amount=5_000 + i % 20_000,
                paid_amount=5_000 + i % 20_000)
            request.occur_time.FromDatetime(now)
            await stub.RecordOrder(request)

        start = time.perf_counter()
        await run_clients(args.orders, args.clients, record, "orders")
        await asyncio.wait_for(all_in.wait(), timeout=300)
        orders = args.orders / (time.perf_counter() - start)
        log(f"  {orders:,.0f} orders/s with their events delivered")
        await nc.close()
        await channel.close()
        system.stop()

        url = database_url or f"sqlite+aiosqlite:///{state / 'ledger.db'}"
        db = Database(url, Path("services/ledger/migrations"))
        engine = await bench_engine(db, args, backend)
        log(f"{backend}: verifying the ledger")
        report = await verify(db)
        await db.dispose()
        for problem in report.problems[:10]:
            log(f"  PROBLEM {problem}")
        log(f"  {'ok' if report.ok else 'FAILED'}: " + ", ".join(f"{n:,} {k}" for k, n in report.counts.items()))
        return Result(backend, ceiling, single, batch_rate, orders, engine, args.batch_size, len(report.problems),
                      cpu)
    finally:
        system.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", type=int, default=1_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--posts", type=int, default=20_000, help="single PostEntry requests")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=5_000)
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = ap.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not postgres_admin_url():
        log(f"{POSTGRES_ENV} is not set: PostgreSQL is skipped")
        backends.remove("postgres")
    log(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; {load()}")
    results = []
    plain: float | None = None
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        if "sqlite" in backends:
            log(f"the baseline: {args.batches} batches of {args.batch_size:,} by plain SQL (sqlite3)")
            plain = plain_sql_batches(Path(tmp) / "plain-sql.db", args)
            log(f"  {plain:,.0f} entries/s")
        for backend in backends:
            with ExitStack() as stack:
                url = stack.enter_context(fresh_database("postgres", Path(tmp), "bench")) \
                    if backend == "postgres" else None
                results.append(asyncio.run(bench_backend(backend, args, Path(tmp) / backend, url)))

    print()
    print(f"Ledger benchmark: {args.members:,} members, {args.clients} clients; {os.cpu_count()} cores, {cpu_model()}; "
          f"{load()} at the end (each phase's is in the log)")
    print()
    print("| what | " + " | ".join(r.backend for r in results) + " | goal (SQLite) | met |")
    print("| --- | " + " | ".join("---" for _ in results) + " | --- | --- |")
    ceiling = " | ".join(f"{r.ceiling:,.0f} calls/s" for r in results)
    print(f"| reference: a do-nothing RPC (health check) on the same server | {ceiling} | - | - |")
    for label, key in (("CPU per do-nothing call, server / clients", "health"),
                       ("CPU per PostEntry, server / clients", "single")):
        print(f"| {label} | " + " | ".join(str(r.cpu[key]) for r in results) + " | - | - |")
    rows = [("single-entry PostEntry through gRPC, durable commits", "single", "posts/s"),
            (f"PostEntries, batches of {args.batch_size:,}", "batch", "entries/s"),
            ("RecordOrder end to end, events delivered", "orders", "orders/s")]
    met_all = True
    for label, key, unit in rows:
        sqlite = next((r for r in results if r.backend == "sqlite"), None)
        met = sqlite is not None and getattr(sqlite, key) >= GOALS[key]
        met_all &= met
        figures = " | ".join(f"{getattr(r, key):,.0f} {unit}" for r in results)
        print(f"| {label} | {figures} | >= {GOALS[key]:,} | {'met' if met else 'MISSED'} |")
    if plain:
        sqlite = next(r for r in results if r.backend == "sqlite")
        figures = " | ".join(f"{plain:,.0f} entries/s" if r.backend == "sqlite" else "-" for r in results)
        print(f"| baseline: plain SQL, batches of {args.batch_size:,} (sqlite3: entries, lots and balances; no checks, "
              f"idempotency or events) | {figures} | - | PostEntries is {sqlite.batch / plain:.2f}x of it |")
    engine_rows = [("engine alone (in-process, no gRPC): PostEntry", "single", "posts/s"),
                   (f"engine alone: PostEntries, batches of {args.batch_size:,}", "batch", "entries/s"),
                   ("engine alone: RecordOrder (events staged, not delivered)", "orders", "orders/s")]
    for label, key, unit in engine_rows:
        figures = " | ".join(f"{r.engine[key]:,.0f} {unit}" for r in results)
        print(f"| {label} | {figures} | - | - |")
    print()
    problems = sum(r.problems for r in results)
    print(f"verify: {'ok' if not problems else f'{problems} problem(s)'} after every run")
    if not met_all:
        print("goals: some MISSED (see the table)")
    # A missed goal is a figure, not a failure of the benchmark; a ledger that does not verify is.
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
