"""Alert benchmark: the order consumer replaying orders from NATS beside the same consumer with a handler
that does nothing (same run, same stream, same database, the two taking turns of ``--slice`` orders so that
both meet the machine's load alike); a rule's 90-day re-evaluation at that size; and
the lag from RecordOrder returning to the alert being raised, with the ledger taking a steady order rate.

The replay and the re-evaluation run the alert service's own parts in this process (the shared
EventConsumer with the service's handlers, the Reevaluator) on a SQLite file, against a real nats-server.
The lag runs the whole system as processes (NATS, customer, ledger, alert) and measures, per order, the
time from RecordOrder's answer to the ``alert.alert.raised.v1`` event: the alert commits before its event
is relayed, so the figure bounds from above when the alert became visible over gRPC (a sample is read back
over gRPC to check it is there).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from nats.js.api import DeliverPolicy
from nats.js.errors import FetchTimeoutError

from crowdpack.alert.v1 import alert_service_pb2 as pb
from crowdpack.alert.v1 import alert_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.events.v1 import alert_events_pb2
from crowdpack.events.v1 import ledger_events_pb2 as ledger_events
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from services.alert.consumers import order_consumer
from services.alert.models import AlertRule, MallView, StoreView
from services.alert.reevaluation import Reevaluator
from services.alert.rules import RuleCache
from services.common import bus
from services.common.auth import Caller, Role
from services.common.clock import utcnow
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.events import ALERT_STREAM, LEDGER_STREAM, ORDER_RECORDED
from services.common.validation import to_timestamp
from services.supervisor import Ports, System
from tests.bench.common import cpu_model, do_nothing_twin, log
from tests.support import identity
from tests.support.identity import signed

MIGRATIONS = Path("services/alert/migrations")
GOALS = {"replay": 10_000, "ratio": 0.5, "lag_p99_s": 1.0, "reeval_s": 30.0}
ADMIN = signed(Caller(staff_id="bench", role=Role.SUPER_ADMIN))
CATEGORIES = ["餐饮", "零售", "服饰", "数码", "亲子"]
FLOORS = ["B1", "1F", "2F", "3F", "4F"]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


async def seed(db: Database, args: argparse.Namespace) -> None:
    """One mall, its stores, and ``args.rules`` rules of every kind (thresholds that fire for a few members)."""
    rng = random.Random(7)
    now = utcnow()
    async with db.transaction() as session:
        session.add(MallView(mall_id="1", name="基准商场", timezone="Asia/Shanghai", deleted=False, revision=1))
        for s in range(args.stores):
            session.add(StoreView(store_id=str(100 + s), mall_id="1", name=f"门店{s}", category=CATEGORIES[s % 5],
                                  business_format="", floor=FLOORS[s % 5], tags=["promo"] if s % 7 == 0 else [],
                                  deleted=False))
        kinds = [(pb.STORE_SCOPE_KIND_ALL, []), (pb.STORE_SCOPE_KIND_CATEGORY, ["餐饮", "数码"]),
                 (pb.STORE_SCOPE_KIND_FLOOR, ["1F"]), (pb.STORE_SCOPE_KIND_TAG, ["promo"]),
                 (pb.STORE_SCOPE_KIND_STORES, [str(100 + s) for s in range(0, args.stores, 9)])]
        for r in range(args.rules):
            kind, values = kinds[r % len(kinds)]
            session.add(AlertRule(
                mall_id="1", name=f"规则{r}", scope_kind=kind, scope_values=values,
                single_enabled=r % 3 == 0, single_min_paid=rng.choice([80_000, 95_000]),
                any_enabled=r % 3 == 1, any_days=rng.choice([3, 7, 30]), any_min_count=rng.choice([3, 4]),
                any_min_paid=None, total_enabled=r % 3 == 2, total_days=rng.choice([7, 30, 90]), total_min_count=None,
                total_min_paid=rng.choice([300_000, 500_000]), creator_id="bench", created_at=now, editor_id="bench",
                updated_at=now, version=1, eval_state=pb.EVALUATION_STATE_DONE, eval_version=1, eval_total=0,
                eval_done=0, eval_raised=0, eval_cursor=""))


async def publish_orders(js, args: argparse.Namespace) -> None:
    rng = random.Random(11)
    now = datetime.now(UTC)
    pending = []
    for i in range(args.orders):
        paid = int(rng.paretovariate(1.5) * 3_000)
        event = ledger_events.OrderRecorded(
            order_id=str(1_000_000 + i), member_id=str(rng.randrange(args.members) + 1), mall_id="1",
            store_id=str(100 + rng.randrange(args.stores)), channel="ORDER_CHANNEL_POS", amount=paid,
            paid_amount=paid, occur_time=to_timestamp(now - timedelta(seconds=rng.uniform(0, 89 * 86_400))))
        pending.append(await js.publish_async(ORDER_RECORDED, event.SerializeToString(),
                                              headers={"Nats-Msg-Id": f"bench-{i}"}))
        if len(pending) >= 5_000:
            await asyncio.gather(*pending)
            pending.clear()
            if (i + 1) % 100_000 == 0:
                log(f"  published {i + 1:,}")
    await asyncio.gather(*pending)


async def handler_alone(db: Database, args: argparse.Namespace) -> float:
    """``apply_orders`` on fresh orders of the same members, 100 events a transaction, no NATS."""
    from services.alert.ordering import apply_orders
    rng = random.Random(13)
    now = datetime.now(UTC)
    n = min(args.orders, 20_000)
    events = []
    for i in range(n):
        paid = int(rng.paretovariate(1.5) * 3_000)
        events.append(ledger_events.OrderRecorded(
            order_id=str(9_000_000 + i), member_id=str(rng.randrange(args.members) + 1), mall_id="1",
            store_id=str(100 + rng.randrange(args.stores)), channel="ORDER_CHANNEL_POS", amount=paid,
            paid_amount=paid, occur_time=to_timestamp(now - timedelta(seconds=rng.uniform(0, 89 * 86_400)))))
    cache = RuleCache()
    started = time.perf_counter()
    for start in range(0, n, 100):
        run = events[start:start + 100]
        await db.run_sync_write(lambda session: apply_orders(session, cache, run, utcnow()))  # noqa: B023 - awaited at once
    return n / (time.perf_counter() - started)


@dataclass
class Phase:
    """What one consumer's turns added up to: messages applied, seconds, this process's CPU seconds."""

    consumer: EventConsumer
    done: int = 0
    seconds: float = 0.0
    cpu: float = 0.0


async def replay(phases: list[Phase], js, total: int, path: Path, slice_n: int) -> None:
    """Runs the consumers in turns of ``slice_n`` messages each until each has applied the whole stream, so that
    they share whatever else the machine is doing alike (a consumer run after the other would meet a different
    load). Each turn fetches and applies batches as ``EventConsumer.run`` does (``fetch``, then ``handle_batch``:
    one transaction, then the acks) on the consumer's durable. A turn's time and CPU time (every thread of this
    process: the event loop's NATS work, the writer's, the checkpoint thread's) end after a checkpoint of what it
    wrote, so no turn leaves work to the next."""
    subs = []
    for phase in phases:
        await phase.consumer.ensure()
        subs.append(await js.pull_subscribe_bind(durable=phase.consumer.durable, stream=LEDGER_STREAM.name))
    last = time.perf_counter()
    while any(phase.done < total for phase in phases):
        for phase, sub in zip(phases, subs, strict=True):
            target = min(total, phase.done + slice_n)
            cpu, started = time.process_time(), time.perf_counter()
            while phase.done < target:
                try:
                    msgs = await sub.fetch(phase.consumer.batch, timeout=5)
                except (FetchTimeoutError, TimeoutError):
                    continue
                await phase.consumer.handle_batch(msgs)
                phase.done += len(msgs)
            await asyncio.to_thread(checkpoint, path)
            phase.seconds += time.perf_counter() - started
            phase.cpu += time.process_time() - cpu
        if time.perf_counter() - last > 30:
            last = time.perf_counter()
            log("  " + ", ".join(f"{p.consumer.durable} {p.done:,} ({p.done / p.seconds:,.0f}/s)" for p in phases)
                + f"; {load()}")


def checkpoint(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


async def replay_and_reevaluate(args: argparse.Namespace, state: Path) -> dict[str, float]:
    system = System(state_dir=state / "replay", ports=Ports.free())
    system.start(("nats",))
    db = Database(f"sqlite+aiosqlite:///{state / 'alert.db'}", MIGRATIONS)
    try:
        await db.connect()
        await seed(db, args)
        nc, js = await bus.connect(system.nats_url, "bench-alert")
        try:
            log(f"publishing {args.orders:,} orders of {args.members:,} members at {args.stores} stores")
            await publish_orders(js, args)

            alert = order_consumer(db, js, RuleCache())
            noop = do_nothing_twin(alert)
            log(f"replay through the alert consumer ({args.rules} rules) and, in turns of {args.slice:,} orders, the "
                "same shared consumer with a do-nothing handler (same batch and mode: dedupe records, one "
                "transaction a fetched batch)")
            phases = [Phase(noop), Phase(alert)]
            await replay(phases, js, args.orders, state / "alert.db", args.slice)
            noop_phase, real_phase = phases
            noop, noop_cpu = noop_phase.done / noop_phase.seconds, noop_phase.cpu / noop_phase.done
            real, real_cpu = real_phase.done / real_phase.seconds, real_phase.cpu / real_phase.done
            log(f"  do-nothing: {noop:,.0f} orders/s, {noop_cpu * 1e6:.0f} us CPU per order")
            log(f"  alert: {real:,.0f} orders/s, {real_cpu * 1e6:.0f} us CPU per order; {load()}")
        finally:
            await nc.close()
        log("the order handler alone, in transactions of 100 events (what a batched consumer would hand it)")
        alone = await handler_alone(db, args)
        log(f"  {alone:,.0f} orders/s")
        async with db.read() as session:
            from sqlalchemy import func, select

            from services.alert.models import Alert
            alerts = await session.scalar(select(func.count()).select_from(Alert)) or 0
        log(f"  {alerts:,} alerts raised")
        log("re-evaluating one rule over the mall's 90 days")
        async with db.transaction() as session:
            rule = await session.get(AlertRule, 2)
            assert rule is not None
            rule.version += 1
            rule.any_min_count = 2
            rule.eval_state = pb.EVALUATION_STATE_PENDING
        reevaluator = Reevaluator(db, batch=1000)
        started = time.perf_counter()
        while await reevaluator.step():
            pass
        reeval = time.perf_counter() - started
        async with db.read() as session:
            rule = await session.get(AlertRule, 2)
            assert rule is not None and rule.eval_state == pb.EVALUATION_STATE_DONE
            log(f"  {reeval:.1f} s for {rule.eval_done:,} members, {rule.eval_raised:,} alerts opened")
        return {"noop": noop, "real": real, "noop_cpu": noop_cpu, "real_cpu": real_cpu, "alerts": alerts,
                "reeval": reeval, "alone": alone}
    finally:
        await db.dispose()
        system.processes["nats"].stop()


async def lag(args: argparse.Namespace, state: Path) -> dict[str, float]:
    system = System(state_dir=state / "system", ports=Ports.free(),
                    env={"CROWDPACK_CUSTOMER_OUTBOX_POLL_S": "0.05", "CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.05",
                         "CROWDPACK_ALERT_OUTBOX_POLL_S": "0.05", "CROWDPACK_LOG_LEVEL": "WARNING"})
    system.start(("nats", "customer", "ledger", "alert"))
    nc, js = await bus.connect(system.nats_url, "bench-alert-lag")
    channels = {n: identity.channel(system.processes[n].address) for n in ("customer", "ledger", "alert")}
    try:
        orgs = org_grpc.OrganizationServiceStub(channels["customer"])
        members = member_grpc.MemberServiceStub(channels["customer"])
        ledger = ledger_grpc.LedgerServiceStub(channels["ledger"])
        alerts = pb_grpc.AlertServiceStub(channels["alert"])
        mall = (await orgs.CreateMall(org_pb.CreateMallRequest(request_id="m", name="基准商场"), metadata=ADMIN)).mall
        store = (await orgs.CreateStore(org_pb.CreateStoreRequest(request_id="s", mall_id=mall.mall_id, name="门店"),
                                        metadata=ADMIN)).store
        n = args.lag_orders
        log(f"lag: creating {n:,} members")
        ids: list[str] = []
        for start in range(0, n, 200):
            made = await asyncio.gather(*(members.CreateMember(member_pb.CreateMemberRequest(
                request_id=f"lag-m{i}", phone=f"13{i:09d}"), metadata=ADMIN) for i in range(start, min(n, start + 200))))
            ids += [m.member.member_id for m in made]
        deadline = time.monotonic() + 60
        while True:
            try:
                await alerts.CreateAlertRule(pb.CreateAlertRuleRequest(
                    request_id="lag-rule", mall_id=mall.mall_id, name="任意订单",
                    scope=pb.StoreScope(kind=pb.STORE_SCOPE_KIND_ALL),
                    single_order=pb.SingleOrderCondition(enabled=True, min_paid_amount=1)), metadata=ADMIN)
                break
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        # Every member's accounts are open before the clock starts (the ledger opens them from the events).
        for member_id in (ids[0], ids[-1]):
            while True:
                try:
                    await ledger.GetBalances(ledger_pb.GetBalancesRequest(member_id=member_id), metadata=ADMIN)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)
        raised: dict[str, float] = {}

        async def on_raised(msg) -> None:
            event = alert_events_pb2.AlertRaised()
            event.ParseFromString(msg.data)
            raised.setdefault(event.member_id, time.perf_counter())

        # Through JetStream (an ordered consumer from now on), as a real follower of the alerts would read them: a
        # core NATS subscription may drop messages when its client falls behind, which would count as lag.
        await js.subscribe("alert.alert.raised.v1", stream=ALERT_STREAM.name, cb=on_raised, ordered_consumer=True,
                           deliver_policy=DeliverPolicy.NEW)
        returned: dict[str, float] = {}

        def order(i: int, member_id: str) -> ledger_pb.RecordOrderRequest:
            return ledger_pb.RecordOrderRequest(
                request_id=f"lag-o{i}", member_id=member_id, mall_id=mall.mall_id, store_id=store.store_id,
                channel=ledger_pb.ORDER_CHANNEL_POS, external_order_no=f"L{i}", amount=1_000, paid_amount=1_000,
                occur_time=to_timestamp(datetime.now(UTC)))

        async def one(i: int, member_id: str) -> None:
            await ledger.RecordOrder(order(i, member_id), metadata=ADMIN)
            returned[member_id] = time.perf_counter()

        # The ledger knows the mall and the store (from the same events) before the clock starts.
        warm = (await members.CreateMember(member_pb.CreateMemberRequest(request_id="warm", phone="13999999999"),
                                           metadata=ADMIN)).member.member_id
        deadline = time.monotonic() + 60
        while True:
            try:
                await ledger.RecordOrder(order(-1, warm), metadata=ADMIN)
                break
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

        log(f"lag: {n:,} orders at {args.rate}/s through RecordOrder")
        started = time.perf_counter()
        tasks = []
        for i, member_id in enumerate(ids):
            await asyncio.sleep(max(0.0, started + i / args.rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, member_id)))
        await asyncio.gather(*tasks)
        achieved = n / (time.perf_counter() - started)
        deadline = time.monotonic() + 60
        while len(raised) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        lags = sorted(max(raised[m] - returned[m], 0.0) for m in ids if m in raised)
        missing = n - len(lags)
        listed: set[str] = set()  # every alert over gRPC: the events' count is checked against the alerts
        token = ""
        while True:
            page = await alerts.ListAlerts(pb.ListAlertsRequest(page_size=1_000, page_token=token), metadata=ADMIN)
            listed |= {a.member_id for a in page.alerts}
            if not (token := page.next_page_token):
                break
        assert listed >= set(raised), "an alert event names a member with no alert over gRPC"
        unseen = len(set(ids) & listed - set(raised))
        p = statistics.quantiles(lags, n=100) if len(lags) >= 2 else [float("nan")] * 99
        log(f"  {achieved:.0f} orders/s achieved; lag p50 {p[49] * 1000:.0f} ms, p99 {p[98] * 1000:.0f} ms; "
            f"{missing} not seen in 60 s ({unseen} of them listed over gRPC, their event not seen; "
            f"{len(set(ids) - listed)} never raised)")
        return {"rate": achieved, "p50": p[49], "p99": p[98], "missing": missing}
    finally:
        for channel in channels.values():
            await channel.close()
        await nc.close()
        system.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--stores", type=int, default=200)
    ap.add_argument("--rules", type=int, default=20)
    ap.add_argument("--lag-orders", type=int, default=3_000, help="0 skips the lag measurement")
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--slice", type=int, default=50_000, help="orders each consumer applies in its turn")
    args = ap.parse_args(argv)
    log(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-alert-") as tmp:
        replay = asyncio.run(replay_and_reevaluate(args, Path(tmp)))
        lagged = asyncio.run(lag(args, Path(tmp))) if args.lag_orders > 0 else None
    ratio = replay["real"] / replay["noop"]
    rows = [
        (f"replay of {args.orders:,} orders ({args.members:,} members, {args.stores} stores, {args.rules} rules) "
         "from NATS through the alert consumer", f"{replay['real']:,.0f} orders/s",
         f">= {GOALS['replay']:,} orders/s", replay["real"] >= GOALS["replay"]),
        ("the same consumer with a do-nothing handler, same run", f"{replay['noop']:,.0f} orders/s", "-", None),
        ("alert consumer / do-nothing consumer", f"{ratio:.2f}x", f">= {GOALS['ratio']}x", ratio >= GOALS["ratio"]),
        ("CPU per order in this process (NATS client, dedupe, handler, commit), alert / do-nothing consumer, and "
         "the ratio of the rates they allow", f"{replay['real_cpu'] * 1e6:.0f} / {replay['noop_cpu'] * 1e6:.0f} us, "
         f"{replay['noop_cpu'] / replay['real_cpu']:.2f}x", "-", None),
        ("reference: the order handler alone, 100 events a transaction (no NATS, no dedupe)",
         f"{replay['alone']:,.0f} orders/s", "-", None),
        *([] if lagged is None else [
            (f"RecordOrder returned -> alert raised, ledger taking {lagged['rate']:.0f} orders/s, p50 / p99",
             f"{lagged['p50'] * 1000:.0f} / {lagged['p99'] * 1000:.0f} ms", "p99 <= 1 s",
             lagged["p99"] <= GOALS["lag_p99_s"] and not lagged["missing"])]),
        (f"re-evaluating 90 days of one rule after an edit ({args.members:,} members' orders)",
         f"{replay['reeval']:.1f} s", f"<= {GOALS['reeval_s']:.0f} s", replay["reeval"] <= GOALS["reeval_s"]),
    ]
    print()
    print(f"Alert benchmark: {os.cpu_count()} cores, {cpu_model()}; SQLite; {load()} at the end")
    print()
    print("| what | figure | goal | met |")
    print("| --- | --- | --- | --- |")
    for what, figure, goal, met in rows:
        print(f"| {what} | {figure} | {goal} | {'-' if met is None else 'met' if met else 'MISSED'} |")
    missing = 0 if lagged is None else lagged["missing"]
    print(f"\n{replay['alerts']:,.0f} alerts raised by the replay"
          + ("" if lagged is None else f"; {missing:.0f} lag orders never raised one"))
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
