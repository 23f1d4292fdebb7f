"""Imports: storing uploads, previewing them, starting jobs, their reports, and the member download."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2 as mpb
from services.common.auth import Caller
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.common.idempotency import idempotent
from services.common.pagination import Page, keyset_page
from services.common.validation import enum_of
from services.customer.classification.models import Tag
from services.customer.classification.repository import ClassificationRepository
from services.customer.feature import FeatureService
from services.customer.imports import jobs, reading
from services.customer.imports.export import export_members
from services.customer.imports.jobs import ImportRunner, file_to_proto, job_to_proto
from services.customer.imports.models import ImportFile, ImportJob, ImportRowIssue
from services.customer.imports.repository import ImportRepository
from services.customer.members.repository import among
from services.customer.members.service import CrowdMembers


def _encoding(record: ImportFile, requested: int) -> int:
    if record.format == pb.IMPORT_FORMAT_XLSX:
        return 0
    return requested or record.detected_encoding


async def _file(repo: ImportRepository, file_id: int) -> ImportFile:
    record = await repo.file(file_id)
    if record is None:
        raise NotFound(f"no uploaded file {file_id}", field="file_id")
    return record


async def _stored_upload(repo: ImportRepository, request_id: str, file_name: str,
                         sha: str) -> pb.UploadImportFileResponse | None:
    record = await repo.file_by_request(request_id)
    if record is None:
        return None
    if record.sha256 != sha or record.file_name != file_name:
        raise AlreadyExists("was already used for a different file", field="request_id")
    return pb.UploadImportFileResponse(file=file_to_proto(record))


async def _job_view(repo: ImportRepository, job: ImportJob) -> pb.ImportJob:
    record = await repo.file(job.file_id)
    tag = await repo.tag(job.tag_id) if job.tag_id else None
    return job_to_proto(job, record.file_name if record else "", tag.name if tag else "")


class ImportService(FeatureService):
    def __init__(self, db: Database, runner: ImportRunner, clock: Clock = utcnow,
                 crowds: CrowdMembers | None = None) -> None:
        super().__init__(db, clock)
        self.runner = runner
        self.crowds = crowds

    async def save_upload(self, caller: Caller, request_id: str, file_name: str, path: Path, size: int,
                          sha: str) -> pb.UploadImportFileResponse:
        """Stores the uploaded file at ``path`` once per request_id (a repeat answers as the first did)."""
        async with self.db.read() as session:
            stored = await _stored_upload(ImportRepository(session), request_id, file_name, sha)
        if stored is not None:
            return stored
        info = await asyncio.to_thread(reading.inspect, path, file_name)
        record = ImportFile(request_id=request_id, file_name=file_name, size_bytes=size, sha256=sha,
                            format=info.format, detected_encoding=info.encoding,
                            header=json.dumps(info.header, ensure_ascii=False), row_count=info.row_count,
                            uploaded_by=caller.staff_id, created_at=self.clock())
        try:
            async with self.db.transaction() as session:
                await jobs.store_file(session, path, record)
        except IntegrityError:  # a concurrent twin with this request_id committed first
            async with self.db.read() as session:
                stored = await _stored_upload(ImportRepository(session), request_id, file_name, sha)
            if stored is None:
                raise
            return stored
        return pb.UploadImportFileResponse(file=file_to_proto(record))

    async def preview(self, file_id: int, requested: int, zone: ZoneInfo, kind: int) -> pb.PreviewImportResponse:
        async with self.db.read() as session:
            record = await _file(ImportRepository(session), file_id)
            make_checker = await jobs.load_checker(session, kind, zone)
        encoding = _encoding(record, requested)
        async with self.runner.file_copy(record) as path:
            # A file the encoding cannot read is shown garbled, with a warning (so is a header without a key
            # column); StartImport refuses both.
            warning = await asyncio.to_thread(reading.decode_problem, path, encoding) \
                if record.format == pb.IMPORT_FORMAT_CSV else ""
            rows, counts, mapping, warning = await asyncio.to_thread(jobs.preview, path, record.format, encoding,
                                                                     kind, make_checker, warning)
        return pb.PreviewImportResponse(
            rows=rows, counts=counts, encoding=enum_of(pb.ImportEncoding, encoding), warning=warning,
            columns=[pb.ImportColumn(header=h, field=f) for h, f in zip(mapping.headers, mapping.fields)])

    async def start(self, request: pb.StartImportRequest, caller: Caller, file_id: int, mode: int, requested: int,
                    tag_name: str, zone_name: str, kind: int) -> pb.StartImportResponse:
        """Checks the file (a file the chosen encoding cannot read, or without a key column, never becomes a job),
        makes the job once per request_id and starts it."""
        async with self.db.read() as session:
            record = await _file(ImportRepository(session), file_id)
        encoding = _encoding(record, requested)
        async with self.runner.file_copy(record) as path:
            await asyncio.to_thread(jobs.check_file, path, record.format, encoding, kind)
        response = await self._start(request, caller, record, mode, encoding, tag_name, zone_name, kind)
        self.runner.start(int(response.job.job_id))
        return response

    @idempotent("StartImport")
    async def _start(self, session: AsyncSession, request: pb.StartImportRequest, caller: Caller,
                     record: ImportFile, mode: int, encoding: int, tag_name: str,
                     zone_name: str, kind: int) -> pb.StartImportResponse:
        tag = None
        if tag_name:
            repo = ClassificationRepository(session)
            tag = await repo.tag_named(tag_name) or await repo.add_tag(
                Tag(name=tag_name, predefined=False, created_at=self.clock()))
        job = ImportJob(file_id=record.id, mode=mode, encoding=encoding, kind=kind, state=pb.IMPORT_JOB_STATE_PENDING,
                        tag_id=tag.id if tag else None, time_zone=zone_name, operator_id=caller.staff_id,
                        total_rows=record.row_count, processed_rows=0, created_count=0, updated_count=0,
                        unchanged_count=0, invalid_count=0, duplicate_count=0, conflict_count=0,
                        error_message="", created_at=self.clock())
        await ImportRepository(session).add_job(job)
        return pb.StartImportResponse(job=job_to_proto(job, record.file_name, tag.name if tag else ""))

    async def job(self, job_id: int) -> pb.ImportJob:
        async with self.db.read() as session:
            repo = ImportRepository(session)
            job = await repo.job(job_id)
            if job is None:
                raise NotFound(f"no import job {job_id}", field="job_id")
            return await _job_view(repo, job)

    async def jobs(self, limit: int, before: int | None) -> Page[pb.ImportJob]:
        """A page of jobs as their views, newest first (a view's job_id is its id)."""
        async with self.db.read() as session:
            repo = ImportRepository(session)
            page = await keyset_page(lambda n: repo.jobs(n, before), limit)
            return Page([await _job_view(repo, job) for job in page.items], page.more)

    async def issues(self, job_id: int, limit: int, after: int | None) -> Page[ImportRowIssue]:
        async with self.db.read() as session:
            repo = ImportRepository(session)
            if await repo.job(job_id) is None:
                raise NotFound(f"no import job {job_id}", field="job_id")
            return await keyset_page(lambda n: repo.issues(job_id, n, after), limit)

    async def export(self, caller: Caller, f: mpb.MemberFilter, crowd_mall_id: int | None, order_by: int,
                     ascending: bool, cap: int) -> tuple[bytes, int, bool]:
        """The members ``caller`` sees that match the filter, as CSV: (data, rows, whether the cap cut it).

        The filter's crowd, if it has one, is read in ``crowd_mall_id`` by the same engine as ListMembers."""
        crowd = None
        if crowd_mall_id is not None:
            if self.crowds is None:
                raise FailedPrecondition("the crowd index is not loaded in this process", field="filter.crowd")
            ids = await self.crowds.member_ids(crowd_mall_id, f.crowd, mall_field="filter.crowd_mall_id",
                                               field="filter.crowd")
            crowd = among(ids, self.db.dialect)
        async with self.db.read() as session:
            return await export_members(session, caller, f, order_by, ascending, cap, crowd)
