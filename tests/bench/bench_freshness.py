"""Freshness benchmark: how fast the customer service applies the ledger's events, and how stale what users see is.

Run with ``python -m tests.bench.bench_freshness`` (``make bench``). Real NATS (its own process), the
customer service in this process (``Runtime``, as deployed: consumers, outbox relay, crowd index),
SQLite. Parts:

- backlog: a burst of ledger events (orders, refunds, postings, settlements, vouchers) waiting on the
  LEDGER stream; the service starts and applies them into statistics, levels, orders and the crowd
  index. Events/s from the service's start until every event is committed and the crowd index has
  followed every customer event that produced. Baseline: the same ``EventConsumer`` with a handler
  that does nothing, on the same stream and database.
- refresh: one member's crowd index refresh with 1,000 tags, 200 stores and 50 malls defined, and the
  same with 10x and 0.1x the tags: its cost should not follow the number of bitmaps.
- lag: the ledger (its own process) takes orders at a fixed rate; for each, the time from
  ``RecordOrder`` returning to the member's statistics (and list sort keys, the same row) and the crowd
  index reflecting it; p50/p99. Then the same while a fast import of ``--import-rows`` rows runs.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import func, select

from services.common import bus
from services.common.config import CommonSettings
from services.common.consumer import EventConsumer
from services.common.db import Database
from services.common.events import CUSTOMER_STREAM, LEDGER_STREAM
from services.common.server import Runtime
from services.customer.config import CustomerSettings
from services.customer.models import OutboxEvent, ProcessedMessage
from services.customer.service import build_spec, consumers
from services.supervisor import Ports, System
from tests.bench.common import cpu_model, log
from tests.support.ledger_burst import Shape, burst, seed

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


async def processed(db: Database, durable: str) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(ProcessedMessage)
                                    .where(ProcessedMessage.consumer == durable)) or 0


async def caught_up(runtime: Runtime, n: int) -> bool:
    """Every ledger event committed, every outbox event sent, and the crowd index at the stream's end."""
    ctx = runtime.ctx
    assert ctx is not None
    done = await processed(ctx.db, "customer-ledger-events")
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

            async def nothing(_session, _event) -> None:
                return None

            template = consumers_of(db, js)[0]
            noop = EventConsumer(db, js, durable="bench-noop", stream=LEDGER_STREAM, model=ProcessedMessage,
                                 handlers=dict.fromkeys(template.handlers, nothing), batch=template.batch)
            await noop.ensure()
            started = time.perf_counter()
            task = asyncio.create_task(noop.run())
            await wait_for(lambda: _at_least(db, "bench-noop", len(items)), "the do-nothing consumer", 600)
            noop_s = time.perf_counter() - started
            noop.stop()
            await task
            await db.dispose()
            log(f"  {len(items) / noop_s:,.0f} events/s")

            spec = build_spec(CustomerSettings(grpc_port=0, metrics_port=0, database_url=url, outbox_poll_s=0.05))
            spec.common = CommonSettings(state_dir=folder, nats_url=system.nats_url)
            runtime = Runtime(spec)
            await runtime.start()
            log("backlog: the customer service applies them")
            started = time.perf_counter()
            await wait_for(lambda: _at_least(runtime.ctx.db, "customer-ledger-events", len(items)),
                           "the projection", 1_800)
            projection_s = time.perf_counter() - started
            log(f"  the projection: {len(items) / projection_s:,.0f} events/s")
            await wait_for(lambda: caught_up(runtime, len(items)), "the crowd index", 1_800)
            applied_s = time.perf_counter() - started
            await runtime.stop()
            await nc.close()
        finally:
            system.stop()
    return {"events": len(items), "members": shape.members, "rate": len(items) / applied_s,
            "projection_rate": len(items) / projection_s,
            "noop_rate": len(items) / noop_s}


def consumers_of(db: Database, js) -> list[EventConsumer]:
    class Ctx:
        pass

    ctx = Ctx()
    ctx.db, ctx.js = db, js  # type: ignore[attr-defined]
    return consumers(ctx)  # type: ignore[arg-type]


async def _at_least(db: Database, durable: str, n: int) -> bool:
    return await processed(db, durable) >= n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("parts", nargs="*", default=["backlog"])
    args = parser.parse_args(argv)
    print(f"machine: {cpu_model()}; SQLite")
    if "backlog" in args.parts:
        r = asyncio.run(backlog(args))
        ratio = r["rate"] / r["noop_rate"]
        print(f"\nbacklog of {r['events']:,} ledger events over {r['members']:,} members")
        print("| what | figure | baseline | goal |\n| --- | --- | --- | --- |")
        print(f"| the projection alone (statistics, levels, orders) | {r['projection_rate']:,.0f} events/s | | |")
        print(f"| apply rate | {r['rate']:,.0f} events/s | do-nothing handler {r['noop_rate']:,.0f} events/s "
              f"({ratio:.2f}x) | >= {GOALS['backlog_rate']:,} events/s and >= {GOALS['backlog_ratio']}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
