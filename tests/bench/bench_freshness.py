"""Freshness benchmark: how fast the customer service applies the ledger's events, and how stale what users see is.

Run with ``python -m tests.bench.bench_freshness`` (``make bench``). Real NATS (its own process), the
customer service in this process (``Runtime``, as deployed: consumers, outbox relay, crowd index),
SQLite. Parts:

- backlog: a burst of ledger events (orders, refunds, postings, settlements, vouchers) waiting on the
  LEDGER stream; the service starts and applies them into statistics, levels, orders and the crowd
  index. Events/s from the service's start until every event is committed and the crowd index has
  followed every customer event that produced. Baseline: the same ``EventConsumer`` with a handler
  that does nothing, on the same stream and database. Beside the rates, this process's CPU time per
  event in each phase (threads included; NATS is its own process): on a loaded machine the rates
  follow the load, the CPU times much less. Then the same CPU split by thread: the database's writer (the
  projection's transactions, the dedupe records, the commits), the event loop (NATS, decoding, the crowd
  index following, the outbox relay) and the rest (readers, the checkpoint thread). Before each phase the
  process freezes what it holds (``gc.freeze``), as the deployed service does once started
  (``services.common.server.serve``): without it, a full collection walks the whole heap (the seeding's,
  the service's start's), some 50 ms each, and that is charged to the phase.
- refresh: one member's crowd index refresh with 1,000 tags, 200 stores and 50 malls defined, and the
  same with 10x and 0.1x the tags: its cost should not follow the number of bitmaps.
- refresh (in this process, no NATS): the member gains or loses a tag and an interaction mall before
  each refresh, so it enters and leaves bitmaps; the median of ``--refresh-reps`` refreshes.
- lag, import-lag: the whole system as processes (NATS, customer, ledger: ``services.supervisor``). The
  ledger takes ``--lag-orders`` orders at ``--rate`` a second, one per fresh member; for each, the time
  from ``RecordOrder`` returning until the customer service shows it both in the member's statistics
  and list sort key (``ListMembers`` by last spend time: the stats row) and in the crowd index
  (``ListMembers`` with an ad hoc crowd: last consumption in the order's mall today); p50/p99. The
  observer asks every 50 ms, so a figure carries up to that much more. ``import-lag`` does the same
  while a fast import of ``--import-rows`` rows (1,000,000 by default) runs, and says whether it was
  still running when the last order was sent.

Parts are positional (``python -m tests.bench.bench_freshness lag``); all by default.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, insert, select

from crowdpack.customer.v1 import crowd_pb2 as crowd_pb
from crowdpack.customer.v1 import import_service_pb2 as import_pb
from crowdpack.customer.v1 import import_service_pb2_grpc as import_grpc
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from services.common import bus
from services.common.auth import Caller, Role
from services.common.config import CommonSettings
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.events import CUSTOMER_STREAM
from services.common.server import Runtime
from services.common.validation import to_timestamp
from services.customer.classification.models import CustomerTag
from services.customer.config import CustomerSettings
from services.customer.crowds.columns import tag_bitmap
from services.customer.crowds.index import CrowdIndex
from services.customer.models import CustomerInteraction, OutboxEvent
from services.customer.service import build_spec, consumers
from services.supervisor import Ports, System
from tests.bench.bench_import import write_csv
from tests.bench.common import THREAD_ROLES, cpu_by_role, cpu_model, do_nothing_twin, log, thread_cpu
from tests.support import identity
from tests.support.identity import signed
from tests.support.ledger_burst import FIRST_TAG, NOW, Shape, burst, seed

GOALS = {"backlog_rate": 2_000, "backlog_ratio": 0.5, "lag_p99_s": 1.0, "import_lag_p99_s": 5.0}
MIGRATIONS = Path("services/customer/migrations")
PROGRESS: dict[str, int] = {}  # what the last check of a wait saw


async def publish_all(js, items: list[tuple[str, str, Message]]) -> None:
    for start in range(0, len(items), 1_000):
        acks = [await js.publish_async(subject, event.SerializeToString(), headers={"Nats-Msg-Id": msg_id})
                for subject, msg_id, event in items[start:start + 1_000]]
        await asyncio.gather(*acks)


async def wait_for(predicate, what: str, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    last = 0.0
    while not await predicate():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        if time.perf_counter() - last > 5:
            last = time.perf_counter()
            log(f"  waiting for {what}: {PROGRESS}")
        await asyncio.sleep(0.05)


def applied(durable: str) -> int:
    """How many messages the consumer ``durable`` of this process applied, committed and acked: its count in the
    consumers' own metric (``crowdpack_consumer_messages_total``). The observer asks every 50 ms from the service's
    own process, so it must cost next to nothing: counting the consumer's ``processed_message`` rows cost up to a
    few ms a time as they grew (a fifth of the event loop's CPU in a longer backlog), charged to the projection."""
    count = REGISTRY.get_sample_value("crowdpack_consumer_messages_total", {"consumer": durable, "outcome": "applied"})
    return int(count or 0)


async def caught_up(runtime: Runtime, n: int) -> bool:
    """Every ledger event committed, every outbox event sent, and the crowd index at the stream's end."""
    ctx = runtime.ctx
    assert ctx is not None
    done = applied("customer-ledger-events")
    PROGRESS["applied"] = done
    if done < n:
        return False
    async with ctx.db.read() as session:
        unsent = await session.scalar(select(func.count()).select_from(OutboxEvent)
                                      .where(OutboxEvent.published_at.is_(None)))
    if unsent:
        return False
    last = (await ctx.js.stream_info(CUSTOMER_STREAM.name)).state.last_seq
    PROGRESS.update(unsent=unsent, index=ctx.extras["crowd_index"].sequence, stream=last)
    return ctx.extras["crowd_index"].sequence >= last


async def backlog(args: argparse.Namespace) -> dict[str, Any]:
    shape = Shape(members=args.members)
    items = burst(shape, args.events)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite+aiosqlite:///{folder / 'customer.db'}"
        db = Database(url, MIGRATIONS)
        await db.migrate()
        log(f"backlog: seeding {shape.members:,} members, {shape.tags:,} tags, {shape.malls} malls")
        await seed(db, shape)
        system = System(state_dir=folder / "nats", ports=Ports.free())
        system.start(("nats",))
        try:
            nc, js = await bus.connect(system.nats_url, "bench")
            await bus.ensure_streams(js)
            log(f"backlog: publishing {len(items):,} ledger events")
            await publish_all(js, items)

            log("backlog: the baseline, the same consumer with a handler that does nothing")

            # The same consumer and mode as the service's (a fetched batch in one hop to the writer, dedupe records
            # and all), its handlers doing nothing.
            noop = do_nothing_twin(consumers_of(db, js)[0])
            await noop.ensure()
            gc.freeze()  # as the service does after its start (services.common.server.serve): see below
            started, cpu, threads = time.perf_counter(), time.process_time(), thread_cpu()
            task = asyncio.create_task(noop.run())
            await wait_for(lambda: _at_least("bench-noop", len(items)), "the do-nothing consumer", 600)
            noop_s, noop_cpu = time.perf_counter() - started, time.process_time() - cpu
            noop_roles = cpu_by_role(threads, thread_cpu())
            noop.stop()
            await task
            await db.dispose()
            log(f"  {len(items) / noop_s:,.0f} events/s")

            spec = build_spec(CustomerSettings(grpc_port=0, metrics_port=0, database_url=url, outbox_poll_s=0.05))
            spec.common = CommonSettings(state_dir=folder, nats_url=system.nats_url)
            runtime = Runtime(spec)
            await runtime.start()
            # What the start built stays out of the collector's way, as in the deployed service (``serve``); the
            # baseline above ran the same way, so both phases pay only for the collections of what they make.
            gc.freeze()
            log("backlog: the customer service applies them")
            started, cpu, threads = time.perf_counter(), time.process_time(), thread_cpu()
            await wait_for(lambda: _at_least("customer-ledger-events", len(items)),
                           "the projection", 1_800)
            projection_s, projection_cpu = time.perf_counter() - started, time.process_time() - cpu
            log(f"  the projection: {len(items) / projection_s:,.0f} events/s")
            await wait_for(lambda: caught_up(runtime, len(items)), "the crowd index", 1_800)
            applied_s, applied_cpu = time.perf_counter() - started, time.process_time() - cpu
            roles = cpu_by_role(threads, thread_cpu())
            await runtime.stop()
            await nc.close()
        finally:
            system.stop()
    return {"events": len(items), "members": shape.members, "rate": len(items) / applied_s,
            "projection_rate": len(items) / projection_s,
            "noop_rate": len(items) / noop_s, "cpu_us": applied_cpu / len(items) * 1e6,
            "projection_cpu_us": projection_cpu / len(items) * 1e6, "noop_cpu_us": noop_cpu / len(items) * 1e6,
            "roles_us": {k: v / len(items) * 1e6 for k, v in roles.items()},
            "noop_roles_us": {k: v / len(items) * 1e6 for k, v in noop_roles.items()}}


async def refresh_cost(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One member's crowd index refresh (the member gains or loses a tag and moves between two interaction malls
    each time, so bitmaps are entered and left), with 0.1x, 1x and 10x the tags: median seconds per refresh."""
    out = []
    for tags in (args.tags // 10, args.tags, args.tags * 10):
        shape = Shape(members=args.refresh_members, tags=tags)
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'customer.db'}", MIGRATIONS)
            await db.migrate()
            await seed(db, shape)
            index = CrowdIndex(db)
            await index.build()
            bitmaps = len(index.index.bitmaps())
            member = shape.members // 2
            times = []
            for rep in range(args.refresh_reps):
                async with db.transaction() as session:
                    if rep % 2:
                        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == member,
                                                                        CustomerTag.tag_id == FIRST_TAG + tags - 1))
                        await session.execute(delete(CustomerInteraction).where(
                            CustomerInteraction.customer_id == member, CustomerInteraction.mall_id == shape.malls))
                    else:
                        await session.execute(insert(CustomerTag).prefix_with("OR IGNORE"), [
                            {"customer_id": member, "tag_id": FIRST_TAG + tags - 1, "created_at": NOW}])
                        await session.execute(insert(CustomerInteraction).prefix_with("OR IGNORE"), [
                            {"customer_id": member, "mall_id": shape.malls, "first_kind": "consume",
                             "first_at": NOW}])
                started = time.perf_counter()
                await index.refresh_members([member])
                times.append(time.perf_counter() - started)
            assert index.index.evaluate({"groups": [{"op": "include", "all": [
                {"bitmap": tag_bitmap(FIRST_TAG + tags - 1)}]}]}).to_numpy().tolist().count(member) == \
                (args.refresh_reps % 2), "the refresh did not move the member"
            await db.dispose()
        out.append({"tags": tags, "bitmaps": bitmaps, "median_s": statistics.median(times)})
        log(f"refresh: {tags:,} tags ({bitmaps:,} bitmaps): {statistics.median(times) * 1e3:.2f} ms a refresh")
    return out


ADMIN = signed(Caller(staff_id="bench", role=Role.SUPER_ADMIN))
POLL_S = 0.05  # how often the observer asks the customer service (the figures carry up to this much extra)


async def lag(args: argparse.Namespace, state: Path, parts: list[str]) -> dict[str, dict[str, float]]:
    """The whole system as processes; per order, RecordOrder's answer -> the customer service shows it: the member's
    statistics and list sort key (ListMembers by last spend time, the stats row) and the crowd index (ListMembers
    with an ad hoc crowd: last consumption in the order's mall today). Quiet, then during a fast import."""
    system = System(state_dir=state / "system", ports=Ports.free(),
                    env={"CROWDPACK_CUSTOMER_OUTBOX_POLL_S": "0.05", "CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.05",
                         "CROWDPACK_LOG_LEVEL": "WARNING"})
    system.start(("nats", "customer", "ledger"))
    channels = {n: identity.channel(system.processes[n].address) for n in ("customer", "ledger")}
    out: dict[str, dict[str, float]] = {}
    try:
        orgs = org_grpc.OrganizationServiceStub(channels["customer"])
        members = member_grpc.MemberServiceStub(channels["customer"])
        imports = import_grpc.ImportServiceStub(channels["customer"])
        ledger = ledger_grpc.LedgerServiceStub(channels["ledger"])

        async def run(phase: str, rows: int) -> None:
            mall = (await orgs.CreateMall(org_pb.CreateMallRequest(request_id=f"{phase}-m", name=f"{phase}商场"),
                                          metadata=ADMIN)).mall
            store = (await orgs.CreateStore(org_pb.CreateStoreRequest(request_id=f"{phase}-s", mall_id=mall.mall_id,
                                                                      name="门店"), metadata=ADMIN)).store
            n = args.lag_orders
            log(f"{phase}: creating {n:,} members")
            ids: list[str] = []
            base = 900_000_000 + (0 if phase == "lag" else 50_000_000)  # phones no import row holds
            for start in range(0, n, 200):
                made = await asyncio.gather(*(members.CreateMember(member_pb.CreateMemberRequest(
                    request_id=f"{phase}-m{i}", phone=f"19{base + i:09d}"), metadata=ADMIN)
                    for i in range(start, min(n, start + 200))))
                ids += [m.member.member_id for m in made]

            def order(i: int, member_id: str) -> ledger_pb.RecordOrderRequest:
                return ledger_pb.RecordOrderRequest(
                    request_id=f"{phase}-o{i}", member_id=member_id, mall_id=mall.mall_id, store_id=store.store_id,
                    channel=ledger_pb.ORDER_CHANNEL_POS, external_order_no=f"{phase}-{i}", amount=1_000,
                    paid_amount=1_000, occur_time=to_timestamp(datetime.now(UTC)))

            # The ledger knows the mall, the store and every member's accounts before the clock starts.
            for member_id in (ids[0], ids[-1]):
                await _until(lambda m=member_id: ledger.GetBalances(ledger_pb.GetBalancesRequest(member_id=m),
                                                                    metadata=ADMIN))
            warm = ids.pop()
            await _until(lambda w=warm: ledger.RecordOrder(order(-1, w), metadata=ADMIN))
            job = None
            if rows:
                path = state / f"import-{rows}.csv"
                write_csv(path, rows)
                job = await start_import(imports, path)
                await _until_running(imports, job)
                log(f"{phase}: the {rows:,}-row fast import is running")
            crowd = crowd_pb.CrowdDefinition(groups=[crowd_pb.ConditionGroup(
                join=crowd_pb.GROUP_JOIN_INCLUDE, conditions=[crowd_pb.Condition(
                    consumption=crowd_pb.ConsumptionCondition(
                        scope=crowd_pb.StoreScope(mall_ids=[mall.mall_id]),
                        window=crowd_pb.DateWindow(last=crowd_pb.RelativeSpan(count=1,
                                                                              unit=crowd_pb.RELATIVE_UNIT_DAYS)),
                        metric=crowd_pb.CONSUMPTION_METRIC_LAST_TIME))])])
            wanted = set(ids)
            returned: dict[str, float] = {}
            seen: dict[str, dict[str, float]] = {"stats": {}, "crowd": {}}
            done = asyncio.Event()

            async def observe(what: str, request: member_pb.ListMembersRequest) -> None:
                found = seen[what]
                while not done.is_set():
                    token, pages = "", 0
                    while pages < 5:
                        request.page_token = token
                        reply = await members.ListMembers(request, metadata=ADMIN)
                        now = time.perf_counter()
                        fresh = 0
                        for m in reply.members:
                            if m.member_id in wanted and m.member_id not in found and m.stats.spend_count >= 1:
                                found[m.member_id] = now
                                fresh += 1
                        token, pages = reply.next_page_token, pages + 1
                        if not token or not fresh:
                            break
                    if len(found) >= len(wanted):
                        return
                    await asyncio.sleep(POLL_S)

            by_spend = member_pb.MEMBER_ORDER_BY_LAST_SPEND_TIME
            observers = [
                asyncio.create_task(observe("stats", member_pb.ListMembersRequest(order_by=by_spend, page_size=200))),
                asyncio.create_task(observe("crowd", member_pb.ListMembersRequest(
                    order_by=by_spend, page_size=200,
                    filter=member_pb.MemberFilter(crowd=crowd, crowd_mall_id=mall.mall_id))))]

            async def one(i: int, member_id: str) -> None:
                await ledger.RecordOrder(order(i, member_id), metadata=ADMIN)
                returned[member_id] = time.perf_counter()

            log(f"{phase}: {len(ids):,} orders at {args.rate}/s through RecordOrder")
            started = time.perf_counter()
            tasks = []
            for i, member_id in enumerate(ids):
                await asyncio.sleep(max(0.0, started + i / args.rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one(i, member_id)))
            await asyncio.gather(*tasks)
            achieved = len(ids) / (time.perf_counter() - started)
            import_state = ""
            if job is not None:
                job = (await imports.GetImportJob(import_pb.GetImportJobRequest(job_id=job.job_id),
                                                  metadata=ADMIN)).job
                import_state = import_pb.ImportJobState.Name(job.state)
            try:
                await asyncio.wait_for(asyncio.gather(*observers), timeout=args.lag_timeout)
            except TimeoutError:
                pass
            done.set()
            await asyncio.gather(*observers, return_exceptions=True)
            lags = sorted(max(seen["stats"].get(m, math.inf), seen["crowd"].get(m, math.inf)) - returned[m]
                          for m in ids)
            missing = sum(1 for x in lags if x == math.inf)
            p = statistics.quantiles(lags, n=100, method="inclusive")
            log(f"  {achieved:.0f} orders/s achieved; lag p50 {p[49] * 1000:.0f} ms, p99 {p[98] * 1000:.0f} ms; "
                f"{missing} never shown" + (f"; the import was {import_state} when the orders ended"
                                            if import_state else ""))
            for what, found in seen.items():  # where the lag is: the statistics row, or the crowd index
                part = sorted(found[m] - returned[m] for m in ids if m in found)
                if len(part) >= 2:
                    q = statistics.quantiles(part, n=100, method="inclusive")
                    log(f"    {what} alone: p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
            out[phase] = {"rate": achieved, "p50": p[49], "p99": p[98], "missing": missing, "rows": rows,
                          "import_state": import_state}  # type: ignore[dict-item]
            if job is not None:
                await _until_finished(imports, job)

        for phase, rows in (("lag", 0), ("import-lag", args.import_rows)):
            if phase in parts:
                await run(phase, rows)
    finally:
        for channel in channels.values():
            await channel.close()
        system.stop()
    return out


async def _until(call, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await call()
            return
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def start_import(stub, path: Path):
    data = path.read_bytes()
    step = 1024 * 1024

    def messages():
        yield import_pb.UploadImportFileRequest(request_id=f"bench-{path.name}", file_name=path.name,
                                                chunk=data[:step])
        for start in range(step, len(data), step):
            yield import_pb.UploadImportFileRequest(chunk=data[start:start + step])

    uploaded = (await stub.UploadImportFile(messages(), metadata=ADMIN)).file
    return (await stub.StartImport(import_pb.StartImportRequest(request_id=f"bench-start-{path.name}",
                                                                file_id=uploaded.file_id,
                                                                mode=import_pb.IMPORT_MODE_FAST),
                                   metadata=ADMIN)).job


async def _until_running(stub, job) -> None:
    while job.state == import_pb.IMPORT_JOB_STATE_PENDING:
        await asyncio.sleep(0.05)
        job = (await stub.GetImportJob(import_pb.GetImportJobRequest(job_id=job.job_id), metadata=ADMIN)).job


async def _until_finished(stub, job) -> None:
    while job.state in (import_pb.IMPORT_JOB_STATE_PENDING, import_pb.IMPORT_JOB_STATE_RUNNING):
        await asyncio.sleep(0.5)
        job = (await stub.GetImportJob(import_pb.GetImportJobRequest(job_id=job.job_id), metadata=ADMIN)).job
    if job.state != import_pb.IMPORT_JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"the import failed: {job.error_message}")


def consumers_of(db: Database, js) -> list[EventConsumer]:
    class Ctx:
        pass

    ctx = Ctx()
    ctx.db, ctx.js = db, js  # type: ignore[attr-defined]
    return consumers(ctx)  # type: ignore[arg-type]


async def _at_least(durable: str, n: int) -> bool:
    return applied(durable) >= n


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tags", type=int, default=1_000, help="refresh: tags defined (and 0.1x, 10x)")
    parser.add_argument("--refresh-members", type=int, default=50_000)
    parser.add_argument("--refresh-reps", type=int, default=41)
    parser.add_argument("--lag-orders", type=int, default=3_000)
    parser.add_argument("--rate", type=int, default=300, help="lag: orders per second the ledger takes")
    parser.add_argument("--import-rows", type=int, default=1_000_000, help="import-lag: rows of the fast import")
    parser.add_argument("--lag-timeout", type=float, default=120.0)
    parser.add_argument("parts", nargs="*", default=["backlog", "refresh", "lag", "import-lag"])
    args = parser.parse_args(argv)
    print(f"machine: {cpu_model()}; SQLite; {load()} at the start")
    failed = False
    if "backlog" in args.parts:
        r = asyncio.run(backlog(args))
        ratio = r["rate"] / r["noop_rate"]
        print(f"\nbacklog of {r['events']:,} ledger events over {r['members']:,} members ({load()})")
        print("| what | figure | baseline | goal |\n| --- | --- | --- | --- |")
        print(f"| the projection alone (statistics, levels, orders) | {r['projection_rate']:,.0f} events/s | | |")
        print(f"| apply rate | {r['rate']:,.0f} events/s | do-nothing handler {r['noop_rate']:,.0f} events/s "
              f"({ratio:.2f}x) | >= {GOALS['backlog_rate']:,} events/s and >= {GOALS['backlog_ratio']}x |")
        print(f"| CPU time per event (projection alone / all) | {r['projection_cpu_us']:,.0f} / {r['cpu_us']:,.0f} us "
              f"| do-nothing handler {r['noop_cpu_us']:,.0f} us ({r['noop_cpu_us'] / r['cpu_us']:.2f}x) | |")
        by_role = " / ".join(f"{r['roles_us'][k]:,.0f}" for k in THREAD_ROLES)
        noop_by_role = " / ".join(f"{r['noop_roles_us'][k]:,.0f}" for k in THREAD_ROLES)
        print(f"| CPU time per event by thread: the writer / the event loop / the rest | {by_role} us "
              f"| do-nothing handler {noop_by_role} us | |")
    if "refresh" in args.parts:
        rows = asyncio.run(refresh_cost(args))
        print(f"\ncrowd index refresh of one member, {args.refresh_members:,} members, 200 stores, 50 malls ({load()})")
        print("| tags defined | bitmaps | median refresh | vs the fewest bitmaps | goal |\n| --- | --- | --- | --- | --- |")
        for row in rows:
            print(f"| {row['tags']:,} | {row['bitmaps']:,} | {row['median_s'] * 1e3:.2f} ms | "
                  f"{row['median_s'] / rows[0]['median_s']:.2f}x | independent of the number of bitmaps |")
    lag_parts = [p for p in args.parts if p in ("lag", "import-lag")]
    if lag_parts:
        with tempfile.TemporaryDirectory() as tmp:
            lagged = asyncio.run(lag(args, Path(tmp), lag_parts))
        print(f"\nRecordOrder returned -> the customer service shows it (statistics, list sort key, crowd index); "
              f"observed every {POLL_S * 1000:.0f} ms ({load()})")
        print("| what | orders/s | p50 | p99 | goal |\n| --- | --- | --- | --- | --- |")
        for phase, r in lagged.items():
            goal = GOALS["lag_p99_s"] if phase == "lag" else GOALS["import_lag_p99_s"]
            what = "quiet" if phase == "lag" else (f"during a {int(r['rows']):,}-row fast import "
                                                   f"(import {r['import_state']} when the orders ended)")
            print(f"| {what} | {r['rate']:.0f} | {r['p50'] * 1000:.0f} ms | {r['p99'] * 1000:.0f} ms | "
                  f"p99 <= {goal:.0f} s{'' if r['p99'] <= goal else ' (missed)'} |")
            failed |= bool(r["missing"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
