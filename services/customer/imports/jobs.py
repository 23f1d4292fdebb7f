"""Import jobs: the stored file, the reference data rows are checked against, the preview, and the runner.

A job moves PENDING -> RUNNING -> SUCCEEDED, or -> FAILED with its reason. It runs in batches;
each batch is one transaction that writes the batch's members, tags, events and skipped-row
report *and* moves ``processed_rows``. A process killed mid-job therefore leaves whole batches
only, and the job still RUNNING: a restarted service resumes it from ``processed_rows``
(re-reading the rows before it, without writing, to know the file's earlier keys for duplicate
detection). A batch that keeps failing (e.g. a concurrent writer keeps taking its phones) is
retried, then the job is FAILED with the reason, every earlier batch kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common.clock import utcnow
from services.common.db import Database, rowcount
from services.common.errors import InvalidArgument
from services.common.logs import get_logger
from services.common.mapped import table_of
from services.common.outbox import add_event
from services.common.retry import one_line
from services.common.validation import enum_of, to_timestamp
from services.customer.business.ownership import OWNER_ROLES
from services.customer.classification.models import Tag
from services.customer.imports import reading
from services.customer.imports.business_rows import (
    BUSINESS_LOOKUP,
    BusinessRowChecker,
    StaffReference,
    require_business_key,
)
from services.customer.imports.business_writer import BusinessBatchWriter
from services.customer.imports.columns import MISSING_KEY, HeaderMapping, map_header
from services.customer.imports.models import ImportFile, ImportFileChunk, ImportJob
from services.customer.imports.plan import JobContext, Shape, shape_rows
from services.customer.imports.rows import DUPLICATE, OK, Reference, RowResult, RowValidator
from services.customer.imports.writer import BatchWriter, Superseded
from services.customer.levels.models import Level
from services.customer.models import OutboxEvent
from services.customer.organization.models import Mall, Staff
from services.customer.settings.repository import load as load_settings
from services.customer.store_members import store_staff_phones

log = get_logger(__name__)

FAST_BATCH = 10_000
NORMAL_BATCH = 2_000
# A file copy this much older than its runner was left by an earlier process.
SPOOL_MARGIN_S = 5.0
PREVIEW_ROWS = 20
RETRIES = 3
ACTIVE = (pb.IMPORT_JOB_STATE_PENDING, pb.IMPORT_JOB_STATE_RUNNING)
MODE_NAMES: dict[int, str] = {pb.IMPORT_MODE_NORMAL: "normal", pb.IMPORT_MODE_FAST: "fast"}
MEMBERS, BUSINESS = pb.IMPORT_KIND_MEMBERS, pb.IMPORT_KIND_BUSINESS_CUSTOMERS
KIND_NAMES: dict[int, str] = {MEMBERS: "members", BUSINESS: "business_customers"}


# --- the file


def suffix_of(file_name: str) -> str:
    return ".xlsx" if file_name.lower().endswith(".xlsx") else ".csv"


async def store_file(session: AsyncSession, path: Path, record: ImportFile) -> ImportFile:
    """Saves the file row and its bytes in 1 MiB chunks, in the caller's transaction."""
    session.add(record)
    await session.flush()
    with open(path, "rb") as src:
        seq = 0
        while block := src.read(reading.CHUNK):
            await session.execute(insert(table_of(ImportFileChunk)).values(file_id=record.id, seq=seq, data=block))
            seq += 1
    return record


async def spool(db: Database, record: ImportFile, path: Path) -> None:
    """Writes the stored file's bytes to ``path`` (whole, or not at all: through a temporary name)."""
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as out:
            async with db.read() as session:
                seqs = (await session.scalars(select(ImportFileChunk.seq).where(
                    ImportFileChunk.file_id == record.id).order_by(ImportFileChunk.seq))).all()
                for seq in seqs:
                    out.write((await session.scalars(select(ImportFileChunk.data).where(
                        ImportFileChunk.file_id == record.id, ImportFileChunk.seq == seq))).one())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def file_to_proto(record: ImportFile) -> pb.ImportFile:
    header = json.loads(record.header)
    mapping = map_header_lenient(header)
    return pb.ImportFile(
        file_id=str(record.id), file_name=record.file_name, size_bytes=record.size_bytes,
        format=enum_of(pb.ImportFormat, record.format),
        detected_encoding=enum_of(pb.ImportEncoding, record.detected_encoding), row_count=record.row_count,
        sha256=record.sha256,
        columns=[pb.ImportColumn(header=h, field=f) for h, f in zip(mapping.headers, mapping.fields)],
        create_time=to_timestamp(record.created_at))


def map_header_lenient(header: list[str]) -> HeaderMapping:
    """The mapping for display: a header with two columns for one field shows the first."""
    try:
        return map_header(header)
    except Exception:  # noqa: BLE001 - only for display; preview and import report the error
        fields, seen = [], set()
        for h in header:
            f = map_header([h]).fields[0]
            fields.append("" if f in seen else f)
            seen.add(f)
        return HeaderMapping(header, fields, {})


# --- what rows are checked against


async def load_reference(session: AsyncSession) -> Reference:
    ref = Reference()
    for mall_id, name in (await session.execute(select(Mall.id, Mall.name))).all():
        ref.mall_ids.add(mall_id)
        ref.mall_names[name.casefold()] = mall_id
    for number, name, months in (await session.execute(select(Level.number, Level.name,
                                                              Level.validity_months))).all():
        ref.levels[number] = months
        ref.level_names[name.casefold()] = number
    ref.staff_phones = await store_staff_phones(session)
    ref.review_required = (await load_settings(session)).review_required
    return ref


async def load_staff(session: AsyncSession) -> StaffReference:
    """The staff a business customer import may name as owner: enabled, and of a role that may own customers."""
    ref = StaffReference()
    for staff_id, name, phone in (await session.execute(select(Staff.id, Staff.name, Staff.phone).where(
            Staff.disabled.is_(False), Staff.role.in_(OWNER_ROLES)))).all():
        ref.ids.add(str(staff_id))
        if phone:
            ref.phones[phone] = str(staff_id)
        ref.names.setdefault(name.strip().casefold(), []).append(str(staff_id))
    return ref


async def load_checker(session: AsyncSession, kind: int, zone: ZoneInfo) -> Callable[[HeaderMapping], Any]:
    """How rows of a file of this kind are checked, given its header mapping, against the stored data."""
    if kind == BUSINESS:
        staff = await load_staff(session)
        return lambda mapping: BusinessRowChecker(mapping, staff)
    reference = await load_reference(session)
    return lambda mapping: RowValidator(mapping, reference, zone)


def _close(rows: Iterator[Any]) -> None:
    close = getattr(rows, "close", None)
    if close is not None:
        close()


def read_mapping(rows: Iterator[list[str]], kind: int = MEMBERS) -> HeaderMapping:
    header = next(rows, None)
    if header is None:
        raise InvalidArgument("has no header row", field="file")
    if kind == BUSINESS:
        mapping = map_header(header, BUSINESS_LOOKUP)
        require_business_key(mapping)
    else:
        mapping = map_header(header)
        mapping.require_key()
    return mapping


def _preview_mapping(header: list[str], kind: int) -> tuple[HeaderMapping, str]:
    """The header's mapping, and why StartImport would refuse it ("" when it would not): no key column."""
    if kind == BUSINESS:
        mapping = map_header(header, BUSINESS_LOOKUP)
        try:
            require_business_key(mapping)
        except InvalidArgument as err:
            return mapping, err.reason
        return mapping, ""
    mapping = map_header(header)
    return mapping, "" if mapping.has_key else MISSING_KEY


def preview(path: Path, fmt: int, encoding: int, kind: int, make_checker: Callable[[HeaderMapping], Any],
            garbled: str = "") -> tuple[list[pb.PreviewRow], pb.ImportCounts, HeaderMapping, str]:
    """The first rows as read, the counts over the whole file, and a warning; pure (run it in a thread).

    The preview shows what StartImport would refuse rather than failing, so the operator can compare
    encodings: ``garbled`` (the encoding does not read the whole file, ``reading.decode_problem``) reads
    the rows with unreadable bytes as U+FFFD; a header without a key column makes every row invalid for
    that reason. The warning is ``garbled``, else the missing key column, else "".
    """
    rows = reading.open_rows(path, fmt, encoding, errors="replace" if garbled else "strict")
    try:
        header = next(rows, None)
        if header is None:
            raise InvalidArgument("has no header row", field="file")
        mapping, missing = _preview_mapping(header, kind)
        warning = garbled or missing
        validator = None if missing else make_checker(mapping)
        shown: list[pb.PreviewRow] = []
        counts = pb.ImportCounts()
        for i, cells in enumerate(rows):
            result = validator.check(i + 2, cells) if validator is not None else \
                RowResult(i + 2, pb.IMPORT_ROW_STATUS_INVALID, reason=warning)
            counts.scanned += 1
            if result.status == OK:
                counts.to_import += 1
            elif result.status == DUPLICATE:
                counts.duplicate += 1
            else:
                counts.invalid += 1
            if i < PREVIEW_ROWS:
                named: dict[str, str] = {}
                for j, header_name in enumerate(mapping.headers):
                    key = header_name if header_name not in named else f"{header_name}#{j + 1}"
                    named[key] = cells[j] if j < len(cells) else ""
                shown.append(pb.PreviewRow(row_number=result.number, cells=named,
                                           status=enum_of(pb.ImportRowStatus, result.status), reason=result.reason))
        return shown, counts, mapping, warning
    finally:
        _close(rows)


def check_file(path: Path, fmt: int, encoding: int, kind: int = MEMBERS) -> HeaderMapping:
    """What StartImport insists on before a job exists: the encoding reads the whole file, a key column."""
    if fmt == pb.IMPORT_FORMAT_CSV:
        reading.check_decodes(path, encoding)
    rows = reading.open_rows(path, fmt, encoding)
    try:
        return read_mapping(rows, kind)
    finally:
        _close(rows)


# --- the job


def job_to_proto(job: ImportJob, file_name: str = "", tag_name: str = "") -> pb.ImportJob:
    return pb.ImportJob(
        job_id=str(job.id), file_id=str(job.file_id), file_name=file_name, mode=enum_of(pb.ImportMode, job.mode),
        encoding=enum_of(pb.ImportEncoding, job.encoding),
        state=enum_of(pb.ImportJobState, job.state), tag_id=str(job.tag_id or ""), tag_name=tag_name,
        total_rows=job.total_rows,
        processed_rows=job.processed_rows, created=job.created_count, updated=job.updated_count,
        unchanged=job.unchanged_count, invalid=job.invalid_count, duplicate=job.duplicate_count,
        conflict=job.conflict_count, error_message=job.error_message, operator_id=job.operator_id,
        create_time=to_timestamp(job.created_at), start_time=to_timestamp(job.started_at),
        complete_time=to_timestamp(job.completed_at), time_zone=job.time_zone,
        kind=enum_of(pb.ImportKind, job.kind))


def take(rows: Iterator[list[str]], validator: RowValidator | BusinessRowChecker, position: int,
         size: int) -> list[RowResult]:
    """The next ``size`` rows checked; ``position`` data rows were read before (row numbers start at 2)."""
    out: list[RowResult] = []
    check = validator.check
    for i in range(position + 2, position + 2 + size):
        cells = next(rows, None)
        if cells is None:
            break
        out.append(check(i, cells))
    return out


def take_shaped(rows: Iterator[list[str]], validator: RowValidator, shape: Shape, position: int,
                size: int) -> tuple[list[RowResult], datetime]:
    """``take``, with each OK row's INSERT row shaped (plan.shape_rows) at the returned time, the batch's."""
    batch = take(rows, validator, position, size)
    now = utcnow()
    shape_rows(shape, batch, now)
    return batch, now


class BatchFailed(Exception):
    pass


class ImportRunner:
    """Runs import jobs as tasks of the service's event loop; CPU work (reading, checking) runs in a thread.

    Files are read from copies in ``spool_dir``: a job's as ``job-<id>``, an upload's, a check's or a
    preview's under a fresh name, each removed after use. A process killed mid-job leaves its copies;
    the next start clears them.
    """

    def __init__(self, db: Database, spool_dir: Path, *, fast_batch: int = FAST_BATCH,
                 normal_batch: int = NORMAL_BATCH) -> None:
        self.db = db
        self.spool_dir = spool_dir
        spool_dir.mkdir(parents=True, exist_ok=True)
        self.fast_batch = fast_batch
        self.normal_batch = normal_batch
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # Copies older than this were left by an earlier process (one killed before it could remove them).
        self._since = time.time() - SPOOL_MARGIN_S

    def fresh_path(self, kind: str, file_name: str) -> Path:
        """A new name in ``spool_dir`` for a file being uploaded, checked or previewed."""
        return self.spool_dir / f"{kind}-{uuid.uuid4().hex}{suffix_of(file_name)}"

    @asynccontextmanager
    async def file_copy(self, record: ImportFile, name: str = "") -> AsyncIterator[Path]:
        """A copy of the stored file in ``spool_dir`` (named ``name``, or a fresh name), removed after use."""
        path = (self.spool_dir / f"{name}{suffix_of(record.file_name)}" if name
                else self.fresh_path("check", record.file_name))
        await spool(self.db, record, path)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def clear_spool(self) -> None:
        """Removes the file copies an earlier process left behind."""
        for path in self.spool_dir.iterdir():
            if path.stat().st_mtime < self._since:
                path.unlink(missing_ok=True)

    def start(self, job_id: int) -> None:
        if job_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._guarded(job_id), name=f"import-job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    async def wait(self, job_id: int) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task})

    async def resume(self) -> None:
        """Starts every job a previous process left PENDING or RUNNING (after clearing its file copies)."""
        await asyncio.to_thread(self.clear_spool)
        async with self.db.read() as session:
            ids = (await session.scalars(select(ImportJob.id).where(ImportJob.state.in_(ACTIVE))
                                         .order_by(ImportJob.id))).all()
        for job_id in ids:
            log.info("resuming import job", job_id=job_id)
            self.start(job_id)

    async def run(self) -> None:
        """The service's background job: resumes unfinished jobs, and at shutdown stops the running ones.

        A stopped job stays RUNNING with its committed batches; the next start resumes it.
        """
        try:
            await self.resume()
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _guarded(self, job_id: int) -> None:
        try:
            await self._run(job_id)
        except Superseded as err:
            log.info("import job continues elsewhere", job_id=job_id, reason=str(err))
        except Exception as err:
            log.exception("import job failed", job_id=job_id)
            await self._fail(job_id, one_line(err) if not isinstance(err, BatchFailed) else str(err))

    async def _run(self, job_id: int) -> None:
        async with self.db.read() as session:
            job = await session.get(ImportJob, job_id)
            if job is None or job.state not in ACTIVE:
                return
            record = await session.get(ImportFile, job.file_id)
            tag = await session.get(Tag, job.tag_id) if job.tag_id else None
            reference = await load_reference(session)
            staff = await load_staff(session) if job.kind == BUSINESS else None
        assert record is not None
        if job.state == pb.IMPORT_JOB_STATE_PENDING:
            async with self.db.transaction() as session:
                started = await session.execute(update(ImportJob).where(
                    ImportJob.id == job_id, ImportJob.state == pb.IMPORT_JOB_STATE_PENDING).values(
                    state=pb.IMPORT_JOB_STATE_RUNNING, started_at=utcnow()))
            if rowcount(started) != 1:
                raise Superseded(f"import job {job_id} was started elsewhere")
        async with self.file_copy(record, f"job-{job_id}") as path:
            if staff is not None:
                await self._read_and_write_business(path, record, job, tag, reference, staff)
            else:
                await self._read_and_write(path, record, job, tag, reference)

    async def _read_and_write(self, path: Path, record: ImportFile, job: ImportJob, tag: Tag | None,
                              reference: Reference) -> None:
        rows = reading.open_rows(path, record.format, job.encoding)
        reading_ahead: asyncio.Future[tuple[list[RowResult], datetime]] | None = None
        try:
            mapping = await asyncio.to_thread(read_mapping, rows)
            validator = RowValidator(mapping, reference, ZoneInfo(job.time_zone))
            shape = Shape(reference, frozenset(mapping.index), self.db.is_sqlite)
            ctx = JobContext(job.id, job.mode, tag, job.operator_id, reference, frozenset(mapping.index))
            size = self.fast_batch if job.mode == pb.IMPORT_MODE_FAST else self.normal_batch
            done, position = job.processed_rows, 0
            # The next batch is read, checked and shaped (in a thread) while this one is written: the database
            # driver releases the GIL while it works, so the two overlap.
            reading_ahead = asyncio.ensure_future(asyncio.to_thread(take_shaped, rows, validator, shape, position,
                                                                    size))
            while True:
                batch, now = await reading_ahead
                if not batch:
                    break
                start, position = position, position + len(batch)
                reading_ahead = asyncio.ensure_future(asyncio.to_thread(take_shaped, rows, validator, shape,
                                                                        position, size))
                if position <= done:
                    continue  # committed before a restart; read again only for the keys it holds
                todo = batch[done - start:] if start < done else batch
                await self._apply(ctx, todo, max(start, done), position, now)
            await self._finish(ctx, position)
        finally:
            if reading_ahead is not None:
                # The reading thread must be done with the file before it is closed.
                await asyncio.wait({reading_ahead})
                if not reading_ahead.cancelled():
                    reading_ahead.exception()
            await asyncio.to_thread(_close, rows)

    async def _read_and_write_business(self, path: Path, record: ImportFile, job: ImportJob, tag: Tag | None,
                                       reference: Reference, staff: StaffReference) -> None:
        """A business customer file, batch by batch (as ``_read_and_write``; rows are written one by one, so
        there is no shaping ahead)."""
        rows = reading.open_rows(path, record.format, job.encoding)
        try:
            mapping = await asyncio.to_thread(read_mapping, rows, BUSINESS)
            checker = BusinessRowChecker(mapping, staff)
            ctx = JobContext(job.id, job.mode, tag, job.operator_id, reference, frozenset(mapping.index))
            done, position = job.processed_rows, 0
            while batch := await asyncio.to_thread(take, rows, checker, position, self.normal_batch):
                start, position = position, position + len(batch)
                if position <= done:
                    continue  # committed before a restart; read again only for the keys it holds
                todo = batch[done - start:] if start < done else batch
                await self._apply(ctx, todo, max(start, done), position, utcnow(), BusinessBatchWriter)
            await self._finish(ctx, position)
        finally:
            await asyncio.to_thread(_close, rows)

    async def _apply(self, ctx: JobContext, rows: list[RowResult], before: int, after: int, now: datetime,
                     writer: type[BatchWriter] | type[BusinessBatchWriter] = BatchWriter) -> None:
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.db.transaction() as session:
                    await writer(session, ctx).apply(rows, before, after, now)
                return
            except DBAPIError as err:  # e.g. a concurrent CreateMember took one of the batch's phones first
                if attempt == RETRIES:
                    raise BatchFailed(f"rows {rows[0].number}-{rows[-1].number} could not be written "
                                      f"({one_line(err)}); rows before {rows[0].number} were imported") from err
                log.warning("import batch retried", job_id=ctx.job_id, attempt=attempt, error=one_line(err))
                await asyncio.sleep(0.1 * attempt)

    async def _finish(self, ctx: JobContext, position: int) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            done = await session.execute(update(ImportJob).where(
                ImportJob.id == ctx.job_id, ImportJob.state == pb.IMPORT_JOB_STATE_RUNNING,
                ImportJob.processed_rows == position).values(state=pb.IMPORT_JOB_STATE_SUCCEEDED, completed_at=now))
            if rowcount(done) != 1:
                raise Superseded(f"import job {ctx.job_id} was finished elsewhere")
            job = (await session.scalars(select(ImportJob).where(ImportJob.id == ctx.job_id)
                                         .execution_options(populate_existing=True))).one()
            add_event(session, OutboxEvent, events.ImportCompleted(
                job_id=str(job.id), mode=MODE_NAMES.get(job.mode, ""), created=job.created_count,
                updated=job.updated_count,
                skipped=job.invalid_count + job.duplicate_count + job.conflict_count,
                tag_id=str(job.tag_id or ""), operator_id=job.operator_id, complete_time=to_timestamp(now),
                kind=KIND_NAMES.get(job.kind, "members")))
        log.info("import job done", job_id=ctx.job_id, created=job.created_count, updated=job.updated_count)

    async def _fail(self, job_id: int, reason: str) -> None:
        try:
            async with self.db.transaction() as session:
                await session.execute(update(ImportJob).where(ImportJob.id == job_id, ImportJob.state.in_(ACTIVE))
                                      .values(state=pb.IMPORT_JOB_STATE_FAILED, error_message=reason[:2000],
                                              completed_at=utcnow()))
        except Exception:
            log.exception("could not mark import job failed", job_id=job_id)
