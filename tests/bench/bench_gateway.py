"""The gateway's cost: member detail and a member list page through HTTP vs the same RPCs over gRPC, and the
sign-in rate argon2 allows.

One run starts the whole system as OS processes (SQLite) and seeds members. Then, from this one client
process, CONCURRENCY clients call for a fixed time each: first the customer service directly over gRPC (one
channel, the calls multiplexed: what the gateway itself does), then the gateway over HTTP (an httpx pool of
CONCURRENCY connections). Both carry a super admin identity. Sign-in: argon2id verifications per second in
one thread at argon2-cffi's default parameters, and sign-ins per second through ``POST /v1/sessions``.

Goals (issue 17): through the gateway >= 0.6x the direct gRPC rate, p99 <= 100 ms (detail) / 150 ms (list).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
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


async def hammer(call: Callable[[], Awaitable[None]], concurrency: int, seconds: float) -> tuple[float, float]:
    """Calls ``call`` from ``concurrency`` workers for ``seconds``; returns (calls/s, p99 ms)."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - began), percentile(latencies, 0.99) * 1000


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


async def measure(system: System, ids: list[str], concurrency: int, seconds: float) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    rng = random.Random(7)
    metadata = identity.signed(ADMIN, ttl_s=3600)
    async with identity.channel(system.processes["customer"].address) as channel:
        stub = pb_grpc.MemberServiceStub(channel)

        async def grpc_detail() -> None:
            await stub.GetMember(pb.GetMemberRequest(member_id=rng.choice(ids)), metadata=metadata, timeout=10)

        async def grpc_list() -> None:
            await stub.ListMembers(pb.ListMembersRequest(page_size=20), metadata=metadata, timeout=10)

        await hammer(grpc_detail, concurrency, 1.0)  # warm-up
        results["grpc detail"] = await hammer(grpc_detail, concurrency, seconds)
        results["grpc list"] = await hammer(grpc_list, concurrency, seconds)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = identity.access_headers(ADMIN, ttl_s=3600)
    async with httpx.AsyncClient(base_url=system.gateway_url, limits=limits, headers=headers, timeout=10) as http:

        async def http_detail() -> None:
            (await http.get(f"/v1/members/{rng.choice(ids)}")).raise_for_status()

        async def http_list() -> None:
            (await http.get("/v1/members", params={"page_size": 20})).raise_for_status()

        await hammer(http_detail, concurrency, 1.0)  # warm-up
        results["http detail"] = await hammer(http_detail, concurrency, seconds)
        results["http list"] = await hammer(http_list, concurrency, seconds)

        async def sign_in() -> None:
            reply = await http.post("/v1/sessions", json={"login": "13700000000", "password": PASSWORD})
            reply.raise_for_status()

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
        verdict = "met" if through[0] >= 0.6 * direct[0] and through[1] <= goal else "missed"
        print(f"| member {what} | {direct[0]:,.0f}/s (p99 {direct[1]:.0f} ms) | {through[0]:,.0f}/s | "
              f"{through[0] / direct[0]:.2f}x | {through[1]:.0f} ms (<= {goal}): {verdict} |")
    print(f"| sign-in (argon2id {params}) | {verifies:.1f} verifications/s in one thread | "
          f"{results['sign-in'][0]:.1f} sign-ins/s (4 clients) | | {results['sign-in'][1]:.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
