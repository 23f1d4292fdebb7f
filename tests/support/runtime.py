"""Runs a service in-process on real NATS and a real database, bound to free ports."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from services.common.config import CommonSettings, ServiceSettings
from services.common.server import Runtime, ServiceSpec
from tests.support import identity


@asynccontextmanager
async def running_service(build_spec: Callable[..., ServiceSpec], settings: ServiceSettings, *,
                          nats_url: str, state_dir: Path) -> AsyncIterator[tuple[Runtime, grpc.aio.Channel]]:
    spec = build_spec(settings)
    identity.use_test_keys()
    spec.common = CommonSettings(state_dir=state_dir, nats_url=nats_url)
    runtime = Runtime(spec)
    await runtime.start()
    channel = identity.channel(f"{settings.grpc_host}:{runtime.port}")
    try:
        yield runtime, channel
    finally:
        await channel.close()
        stopping = asyncio.create_task(runtime.stop())
        done, _ = await asyncio.wait({stopping}, timeout=30)
        if not done:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.print_stack(limit=5, file=sys.stderr)
            stopping.cancel()
            raise AssertionError("the service did not stop within 30 s (task stacks above)")
        stopping.result()
