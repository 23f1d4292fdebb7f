"""The gateway's cost: member detail and a member list page through HTTP vs the same RPCs over gRPC, and the
sign-in rate argon2 allows.

One run starts the whole system as OS processes (SQLite) and seeds members. Then, from this one client
process, CONCURRENCY clients call for a fixed time each: first the customer service directly over gRPC (one
channel, the calls multiplexed: what the gateway itself does), then the gateway over HTTP (an aiohttp pool of
CONCURRENCY keep-alive connections; httpx spent ~7 ms of CPU per call in this process, more than the gateway
and the service together, so the bench measured its own client). Both carry a super admin identity. Sign-in: argon2id verifications per second in
one thread at argon2-cffi's default parameters, and sign-ins per second through ``POST /v1/sessions``.

Client and servers share the machine's cores, so each phase also reports the CPU time each process spent
per call (customer service, gateway, and this client; from /proc and ``time.process_time``): what a call
costs, independent of how busy the machine was.

Goals (issue 17): through the gateway >= 0.6x the direct gRPC rate, p99 <= 100 ms (detail) / 150 ms (list).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from argon2 import PasswordHasher

from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.customer.v1 import session_service_pb2 as session_pb
from crowdpack.customer.v1 import session_service_pb2_grpc as session_grpc
from services.common.auth import Caller, Role
from services.supervisor import Ports, System
from tests.bench.common import cpu_model, log
from tests.support import identity

ADMIN = Caller(staff_id="bench", role=Role.SUPER_ADMIN)
PASSWORD = "bench password 1"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


@dataclass(frozen=True)
class Phase:
    rate: float  # calls per second
    p99_ms: float
    cpu_ms: dict[str, float]  # CPU time per call, by process ("client" is this one)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    return {"client": time.process_time(), **{name: cpu_seconds(pid) for name, pid in pids.items()}}


async def hammer(call: Callable[[], Awaitable[None]], concurrency: int, seconds: float,
                 pids: dict[str, int] | None = None) -> Phase:
    """Calls ``call`` from ``concurrency`` workers for ``seconds``; the rate, p99 and CPU per call of each
    process in ``pids`` and this client."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    cpu_before = cpu_now(pids or {})
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    calls = max(1, len(latencies))
    cpu_ms = {name: (spent - cpu_before[name]) * 1000 / calls for name, spent in cpu_now(pids or {}).items()}
    return Phase(len(latencies) / elapsed, percentile(latencies, 0.99) * 1000, cpu_ms)


async def seed(address: str, members: int) -> list[str]:
    async with identity.channel(address) as channel:
        stub = pb_grpc.MemberServiceStub(channel)
        ids: list[str] = []
        for start in range(0, members, 200):
            replies = await asyncio.gather(*(stub.CreateMember(pb.CreateMemberRequest(
                request_id=f"bench-{i}", phone=f"139{i:08d}", name=f"会员{i}")) for i in range(start, min(
                    members, start + 200))))
            ids.extend(r.member.member_id for r in replies)
        staff = (await org_grpc.OrganizationServiceStub(channel).CreateStaff(org_pb.CreateStaffRequest(
            request_id="bench-admin", name="压测管理员", phone="13700000000",
            role=org_pb.STAFF_ROLE_SUPER_ADMIN))).staff
        await session_grpc.SessionServiceStub(channel).SetStaffPassword(session_pb.SetStaffPasswordRequest(
            request_id="bench-password", staff_id=staff.staff_id, new_password=PASSWORD))
    return ids


async def measure(system: System, ids: list[str], concurrency: int, seconds: float) -> dict[str, Phase]:
    results: dict[str, Phase] = {}
    pids = {name: proc.popen.pid for name in ("customer", "gateway")
            if (proc := system.processes[name]).popen is not None}
    rng = random.Random(7)
    metadata = identity.signed(ADMIN, ttl_s=3600)
    async with identity.channel(system.processes["customer"].address) as channel:
        stub = pb_grpc.MemberServiceStub(channel)

        async def grpc_detail() -> None:
            await stub.GetMember(pb.GetMemberRequest(member_id=rng.choice(ids)), metadata=metadata, timeout=10)

        async def grpc_list() -> None:
            await stub.ListMembers(pb.ListMembersRequest(page_size=20), metadata=metadata, timeout=10)

        await hammer(grpc_detail, concurrency, 1.0)  # warm-up
        results["grpc detail"] = await hammer(grpc_detail, concurrency, seconds, pids)
        results["grpc list"] = await hammer(grpc_list, concurrency, seconds, pids)
    headers = identity.access_headers(ADMIN, ttl_s=3600)
    async with aiohttp.ClientSession(base_url=system.gateway_url, headers=headers,
                                     connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=10), raise_for_status=True) as http:

        async def get(path: str, params: dict[str, int] | None = None) -> None:
            async with http.get(path, params=params) as reply:
                await reply.read()

        async def http_detail() -> None:
            await get(f"/v1/members/{rng.choice(ids)}")

        async def http_list() -> None:
            await get("/v1/members", params={"page_size": 20})

        await hammer(http_detail, concurrency, 1.0)  # warm-up
        results["http detail"] = await hammer(http_detail, concurrency, seconds, pids)
        results["http list"] = await hammer(http_list, concurrency, seconds, pids)

        async def sign_in() -> None:
            async with http.post("/v1/sessions", json={"login": "13700000000", "password": PASSWORD}) as reply:
                await reply.read()

        results["sign-in"] = await hammer(sign_in, 4, seconds)
    return results


def argon2_rate(seconds: float) -> tuple[float, str]:
    hasher = PasswordHasher()
    stored = hasher.hash(PASSWORD)
    count, stop = 0, time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < stop:
        hasher.verify(stored, PASSWORD)
        count += 1
    params = f"t={hasher.time_cost}, m={hasher.memory_cost // 1024} MiB, p={hasher.parallelism}"
    return count / (time.perf_counter() - began), params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
        system = System(state_dir=Path(folder), ports=Ports.free(),
                        env={"CROWDPACK_LOG_LEVEL": "WARNING", "CROWDPACK_CUSTOMER_OUTBOX_POLL_S": "0.1"})
        try:
            log("starting the system ...")
            system.start()
            log(f"seeding {args.members:,} members ...")
            ids = asyncio.run(seed(system.processes["customer"].address, args.members))
            log(f"{args.concurrency} clients, {args.seconds:.0f} s per phase ...")
            results = asyncio.run(measure(system, ids, args.concurrency, args.seconds))
        finally:
            system.stop()
    verifies, params = argon2_rate(min(args.seconds, 5.0))
    print(f"\ngateway vs direct gRPC, {args.concurrency} concurrent clients, {args.members:,} members, "
          f"{cpu_model()} (2 cores, client and servers on one machine)")
    print("| what | direct gRPC | through the gateway | ratio (goal >= 0.6x) | gateway p99 (goal) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for what, goal in (("detail", 100), ("list", 150)):
        direct, through = results[f"grpc {what}"], results[f"http {what}"]
        verdict = "met" if through.rate >= 0.6 * direct.rate and through.p99_ms <= goal else "missed"
        print(f"| member {what} | {direct.rate:,.0f}/s (p99 {direct.p99_ms:.0f} ms) | {through.rate:,.0f}/s | "
              f"{through.rate / direct.rate:.2f}x | {through.p99_ms:.0f} ms (<= {goal}): {verdict} |")
    print(f"| sign-in (argon2id {params}) | {verifies:.1f} verifications/s in one thread | "
          f"{results['sign-in'].rate:.1f} sign-ins/s (4 clients) | | {results['sign-in'].p99_ms:.0f} ms |")
    print("\nCPU time per call (ms), by process")
    print("| call | customer service | gateway | bench client | all |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for phase in ("grpc detail", "grpc list", "http detail", "http list"):
        cpu = results[phase].cpu_ms
        print(f"| {phase} | {cpu.get('customer', 0):.2f} | {cpu.get('gateway', 0):.2f} | {cpu['client']:.2f} | "
              f"{sum(cpu.values()):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
