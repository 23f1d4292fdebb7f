"""Waiting for the system to settle, so that a test can assert what happened, and what did not.

No test sleeps for a while and hopes: it polls for a condition with a deadline, or, to show that
something did *not* happen, waits until everything that could make it happen has been handled.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
from nats.js import JetStreamContext
from sqlalchemy import text

from services.common.db import Database

T = TypeVar("T")
POLL_S = 0.02


async def eventually(attempt: Callable[[], Awaitable[T] | T], timeout: float = 10.0) -> T:
    """``attempt()``'s first truthy result (awaited if need be).

    Retried every 20 ms while it raises an RPC or assertion error or returns a falsy value; after
    ``timeout`` seconds, the error is raised (or an AssertionError if it only returned falsy values).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = attempt()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except (grpc.aio.AioRpcError, AssertionError):
            if loop.time() > deadline:
                raise
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(POLL_S)


async def caught_up(js: JetStreamContext, stream: str, durable: str, timeout: float = 10.0) -> None:
    """Returns once the durable consumer has been handed every message of ``stream`` and acked each one.

    A consumer acks after its transaction commits, so from then on, whatever those messages were
    going to change has changed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{durable} has not caught up with {stream} after {timeout:.0f}s: "
                                 f"{info.num_pending} not delivered, {info.num_ack_pending} not acked")
        await asyncio.sleep(POLL_S)


async def outbox_sent(db: Database, timeout: float = 10.0) -> None:
    """Returns once the service's outbox relay has published every event committed so far."""

    async def none_unsent() -> bool:
        async with db.read() as session:
            return await session.scalar(text("SELECT count(*) FROM outbox_event WHERE published_at IS NULL")) == 0

    await eventually(none_unsent, timeout)


class Stoppable(Protocol):
    def stop(self) -> None: ...


async def stopped(loop: Stoppable, task: asyncio.Task[None], timeout: float = 30.0) -> None:
    """Stops a relay or consumer loop as the service does at shutdown: it finishes the transaction under way
    (a task cancelled in the middle of a PostgreSQL query may never hear back from the driver), then ends."""
    loop.stop()
    await asyncio.wait_for(task, timeout)
