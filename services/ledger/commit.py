"""Group commit: concurrent mutations share one write transaction, so one commit (one fsync) serves many.

Mutations queue up; one worker at a time takes every queued job (up to ``max_batch``) and runs
them in at most two write transactions:

- batchable requests (``commands.Command``: PostEntry, PostEntries, RecordOrder) are decided
  together by ``commands.run_batch``, with a handful of statements for the whole batch, in one
  synchronous transaction that reaches the database in one hop (``Database.run_sync_write``:
  on SQLite the writer thread runs all of it);
- then every other mutation runs by itself in a SAVEPOINT through ``run_idempotent``, as do the
  requests the batch hands back (and all of them, should the batch as a whole fail): a job that
  raises rolls back alone and the others still commit.

Answers are released only after the commit of the transaction that decided them, so no caller
sees an answer whose change is not durable. Jobs run in the worker's task, not the caller's: a
cancelled RPC cannot interrupt a transaction that others share (its work still commits, and a
retry with the same request_id gets the stored answer).

``run_idempotent`` takes a ``BatchScope`` in place of the ``Database``: the scope's
``transaction()`` is a savepoint of the batch and its ``read()`` is the database's reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import Aborted
from services.common.idempotency import IdempotencyMixin, check_request_id, request_id_of, run_idempotent
from services.common.logs import get_logger
from services.common.retry import one_line
from services.ledger.commands import Command, run_batch

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound=Message)

BATCH_SIZE = Histogram("crowdpack_ledger_commit_batch_size", "Mutations committed together in one transaction",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
ALONE = Counter("crowdpack_ledger_requests_run_alone_total",
                "Batchable requests the batch handed back to run by themselves")
# PostgreSQL's deadlock and serialization failures: a conflict with another writer, safe to retry.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


class BatchScope:
    """The database as one job of a batch sees it."""

    def __init__(self, db: Database, session: AsyncSession) -> None:
        self.db = db
        self.session = session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A savepoint of the batch: released (flushed) when the block ends, rolled back if it raises."""
        async with self.session.begin_nested():
            yield self.session

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.db.read()


@dataclass
class _Job(Generic[T]):
    future: asyncio.Future[T]
    fn: Callable[[BatchScope], Awaitable[T]] | None = None
    command: Command | None = None
    value: Any = None
    error: BaseException | None = None
    done: bool = False


def _conflict(err: BaseException) -> BaseException:
    """A deadlock or serialization failure becomes ABORTED (retry with the same request_id)."""
    if isinstance(err, DBAPIError) and getattr(err.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return Aborted("conflicted with a concurrent writer; retry with the same request_id")
    return err


class GroupCommit:
    def __init__(self, db: Database, idempotency_model: type[IdempotencyMixin], *, max_batch: int = 512) -> None:
        self.db = db
        self.idempotency_model = idempotency_model
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Job[Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def _enqueue(self, job: _Job[T]) -> T:
        # A caller that went away (a cancelled RPC) leaves its answer unread; that is not an error.
        job.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.put_nowait(job)
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain(), name="ledger-group-commit")
        return await asyncio.shield(job.future)

    async def run(self, fn: Callable[[BatchScope], Awaitable[T]]) -> T:
        """Runs ``fn`` in the next batch, in a savepoint of its own; returns its result once committed."""
        return await self._enqueue(_Job(asyncio.get_running_loop().create_future(), fn=fn))

    async def idempotent(self, method: str, request: Message, response_cls: type[R],
                         work: Callable[[AsyncSession], Awaitable[R]]) -> R:
        """``run_idempotent`` inside the next batch."""
        check_request_id(request_id_of(request))
        return await self.run(
            lambda scope: run_idempotent(scope, self.idempotency_model, method, request,  # type: ignore[arg-type]  # scope
                                         response_cls, work))

    async def submit(self, command: Command) -> Message:
        """A batchable request, decided with the others of its batch."""
        check_request_id(command.request_id)
        return await self._enqueue(_Job(asyncio.get_running_loop().create_future(), command=command))

    def _alone(self, command: Command) -> Callable[[BatchScope], Awaitable[Message]]:
        return lambda scope: run_idempotent(
            scope, self.idempotency_model, command.method, command.request,  # type: ignore[arg-type]  # scope acts as a db
            command.response_cls, lambda session: command.run_alone(session, utcnow()))

    async def _drain(self) -> None:
        try:
            while not self._queue.empty():
                jobs = [self._queue.get_nowait() for _ in range(min(self._queue.qsize(), self.max_batch))]
                await self._commit(jobs)
                # Let a writer waiting outside the group (consumers, the outbox relay) take the connection.
                await asyncio.sleep(0)
        finally:
            self._worker = None

    async def _commit(self, jobs: list[_Job[Any]]) -> None:
        BATCH_SIZE.observe(len(jobs))
        try:
            alone = await self._decide_batch([job for job in jobs if job.command is not None])
            rest = [job for job in jobs if job.command is None] + alone
            if rest:
                await self._transaction(rest)
        except BaseException:
            # The worker itself is cancelled (the service stops): what is not answered yet did not commit.
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(Aborted("the service is stopping; retry with the same request_id"))
            raise

    async def _decide_batch(self, batched: list[_Job[Any]]) -> list[_Job[Any]]:
        """Decides the batchable jobs together and answers them once committed; returns those that must run alone."""
        if not batched:
            return []
        commands: list[Command] = [job.command for job in batched]  # type: ignore[misc]  # batched jobs have one
        try:
            outcomes: list[Any] = await self.db.run_sync_write(
                lambda session: run_batch(session, commands, now=utcnow()))
        except Exception as err:  # noqa: BLE001 - rolled back as a whole: every job runs again, alone
            log.warning("batch failed; running its requests one by one", jobs=len(batched), error=one_line(err))
            outcomes = [None] * len(batched)
        alone = []
        for job, outcome in zip(batched, outcomes, strict=True):
            if outcome is None:
                assert job.command is not None
                job.fn = self._alone(job.command)
                alone.append(job)
            elif isinstance(outcome, Exception):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        ALONE.inc(len(alone))
        return alone

    async def _transaction(self, jobs: list[_Job[Any]]) -> None:
        """Runs each job in a savepoint of one transaction; answers them once it commits."""
        try:
            async with self.db.transaction() as session:
                scope = BatchScope(self.db, session)
                for job in jobs:
                    assert job.fn is not None
                    try:
                        job.value = await job.fn(scope)
                        job.done = True
                    except Exception as err:  # noqa: BLE001 - the job's own answer; its savepoint is rolled back
                        job.error = _conflict(err)
                    # Each job starts from a clean identity map: nothing stale crosses savepoints.
                    session.expunge_all()
        except Exception as err:  # noqa: BLE001 - the commit failed: no job of the batch took effect
            log.warning("group commit failed", jobs=len(jobs), error=one_line(err))
            failure = _conflict(err)
            if failure is err:
                failure = Aborted(f"the transaction could not be committed ({one_line(err)}); "
                                  "retry with the same request_id")
            for job in jobs:
                if job.done:
                    job.done, job.error = False, failure
        for job in jobs:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.value)
