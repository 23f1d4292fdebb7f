"""crowdpack.customer.v1.ImportService: upload, preview, import jobs, skipped-row reports, member download."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_service_pb2 as mpb
from services.common.auth import caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import check_request_id, run_idempotent
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import bounded_text, known_enum, parse_int_id
from services.customer.classification.repository import ClassificationRepository
from services.customer.imports import jobs, reading
from services.customer.imports.export import export_members
from services.customer.members.repository import check_filter
from services.customer.imports.jobs import ImportRunner, file_to_proto, job_to_proto
from services.customer.imports.models import ImportFile, ImportJob, ImportRowIssue
from services.customer.models import IdempotencyRecord, Tag
from services.customer.scope import require_super_admin

DEFAULT_ZONE = "Asia/Shanghai"


def zone_of(value: str) -> tuple[str, ZoneInfo]:
    name = value.strip() or DEFAULT_ZONE
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"{name!r} is not an IANA time zone (e.g. Asia/Shanghai)", field="time_zone") from None


def base_name(value: str) -> str:
    name = PureWindowsPath(PurePosixPath(value.strip()).name).name
    if not name:
        raise InvalidArgument("is required in the first message", field="file_name")
    if len(name) > 255:
        raise InvalidArgument("must be at most 255 characters", field="file_name")
    return name


class ImportServicer(pb_grpc.ImportServiceServicer):
    def __init__(self, db: Database, runner: ImportRunner, export_max_rows: int) -> None:
        self.db = db
        self.runner = runner
        self.export_max_rows = export_max_rows

    async def _file(self, session: AsyncSession, file_id: int) -> ImportFile:
        record = await session.get(ImportFile, file_id)
        if record is None:
            raise NotFound(f"no uploaded file {file_id}", field="file_id")
        return record

    @staticmethod
    def _encoding(record: ImportFile, requested: int) -> int:
        if record.format == pb.IMPORT_FORMAT_XLSX:
            return 0
        return requested or record.detected_encoding

    # --- upload

    async def UploadImportFile(self, request_iterator, context: grpc.aio.ServicerContext  # type: ignore[no-untyped-def]
                               ) -> pb.UploadImportFileResponse:
        caller = caller_of(context)
        require_super_admin(caller, "importing members")
        request_id = file_name = ""
        size = 0
        digest = hashlib.sha256()
        path: Path | None = None
        out = None
        try:
            async for message in request_iterator:
                if path is None:
                    check_request_id(message.request_id)
                    request_id, file_name = message.request_id, base_name(message.file_name)
                    path = self.runner.fresh_path("upload", file_name)
                    out = open(path, "wb")  # noqa: SIM115 - closed in finally, also when the stream breaks off
                size += len(message.chunk)
                if size > reading.MAX_BYTES:
                    raise InvalidArgument("is larger than 100 MB", field="file")
                out.write(message.chunk)
                digest.update(message.chunk)
            if path is None or out is None:
                raise InvalidArgument("is required on every mutation", field="request_id")
            out.close()
            sha = digest.hexdigest()
            async with self.db.read() as session:
                stored = await self._stored_upload(session, request_id, file_name, sha)
            if stored is not None:
                return stored
            info = await asyncio.to_thread(reading.inspect, path, file_name)
            record = ImportFile(request_id=request_id, file_name=file_name, size_bytes=size, sha256=sha,
                                format=info.format, detected_encoding=info.encoding,
                                header=json.dumps(info.header, ensure_ascii=False), row_count=info.row_count,
                                uploaded_by=caller.staff_id, created_at=utcnow())
            try:
                async with self.db.transaction() as session:
                    await jobs.store_file(session, path, record)
            except IntegrityError:  # a concurrent twin with this request_id committed first
                async with self.db.read() as session:
                    stored = await self._stored_upload(session, request_id, file_name, sha)
                if stored is None:
                    raise
                return stored
            return pb.UploadImportFileResponse(file=file_to_proto(record))
        finally:
            if out is not None:
                out.close()
            if path is not None:
                path.unlink(missing_ok=True)

    @staticmethod
    async def _stored_upload(session: AsyncSession, request_id: str, file_name: str,
                             sha: str) -> pb.UploadImportFileResponse | None:
        record = await session.scalar(select(ImportFile).where(ImportFile.request_id == request_id))
        if record is None:
            return None
        if record.sha256 != sha or record.file_name != file_name:
            raise AlreadyExists("was already used for a different file", field="request_id")
        return pb.UploadImportFileResponse(file=file_to_proto(record))

    # --- preview and start

    async def PreviewImport(self, request: pb.PreviewImportRequest,
                            context: grpc.aio.ServicerContext) -> pb.PreviewImportResponse:
        require_super_admin(caller_of(context), "importing members")
        file_id = parse_int_id(request.file_id, "file_id")
        requested = known_enum(pb.ImportEncoding, request.encoding, "encoding")
        _, zone = zone_of(request.time_zone)
        async with self.db.read() as session:
            record = await self._file(session, file_id)
            reference = await jobs.load_reference(session)
        encoding = self._encoding(record, requested)
        async with self.runner.file_copy(record) as path:
            if record.format == pb.IMPORT_FORMAT_CSV:
                await asyncio.to_thread(reading.check_decodes, path, encoding)
            rows, counts, mapping = await asyncio.to_thread(jobs.preview, path, record.format, encoding, reference,
                                                            zone)
        return pb.PreviewImportResponse(
            rows=rows, counts=counts, encoding=encoding,
            columns=[pb.ImportColumn(header=h, field=f) for h, f in zip(mapping.headers, mapping.fields)])

    async def StartImport(self, request: pb.StartImportRequest,
                          context: grpc.aio.ServicerContext) -> pb.StartImportResponse:
        caller = caller_of(context)
        require_super_admin(caller, "importing members")
        check_request_id(request.request_id)
        file_id = parse_int_id(request.file_id, "file_id")
        mode = known_enum(pb.ImportMode, request.mode, "mode", allow_unspecified=False)
        requested = known_enum(pb.ImportEncoding, request.encoding, "encoding")
        tag_name = bounded_text(request.tag_name, "tag_name", 50)
        zone_name, _ = zone_of(request.time_zone)
        async with self.db.read() as session:
            record = await self._file(session, file_id)
        encoding = self._encoding(record, requested)
        async with self.runner.file_copy(record) as path:
            # A file the chosen encoding cannot read, or without a key column, never becomes a job.
            await asyncio.to_thread(jobs.check_file, path, record.format, encoding)

        async def start(session: AsyncSession) -> pb.StartImportResponse:
            tag = None
            if tag_name:
                repo = ClassificationRepository(session)
                tag = await repo.tag_named(tag_name) or await repo.add_tag(
                    Tag(name=tag_name, predefined=False, created_at=utcnow()))
            job = ImportJob(file_id=record.id, mode=mode, encoding=encoding, state=pb.IMPORT_JOB_STATE_PENDING,
                            tag_id=tag.id if tag else None, time_zone=zone_name, operator_id=caller.staff_id,
                            total_rows=record.row_count, processed_rows=0, created_count=0, updated_count=0,
                            unchanged_count=0, invalid_count=0, duplicate_count=0, conflict_count=0,
                            error_message="", created_at=utcnow())
            session.add(job)
            await session.flush()
            return pb.StartImportResponse(job=job_to_proto(job, record.file_name, tag.name if tag else ""))

        response = await run_idempotent(self.db, IdempotencyRecord, "StartImport", request, pb.StartImportResponse,
                                        start)
        self.runner.start(int(response.job.job_id))
        return response

    # --- jobs and their reports

    async def _job_view(self, session: AsyncSession, job: ImportJob) -> pb.ImportJob:
        record = await session.get(ImportFile, job.file_id)
        tag = await session.get(Tag, job.tag_id) if job.tag_id else None
        return job_to_proto(job, record.file_name if record else "", tag.name if tag else "")

    async def GetImportJob(self, request: pb.GetImportJobRequest,
                           context: grpc.aio.ServicerContext) -> pb.GetImportJobResponse:
        require_super_admin(caller_of(context), "viewing imports")
        job_id = parse_int_id(request.job_id, "job_id")
        async with self.db.read() as session:
            job = await session.get(ImportJob, job_id)
            if job is None:
                raise NotFound(f"no import job {job_id}", field="job_id")
            return pb.GetImportJobResponse(job=await self._job_view(session, job))

    async def ListImportJobs(self, request: pb.ListImportJobsRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListImportJobsResponse:
        require_super_admin(caller_of(context), "viewing imports")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        before = cursor.get("before") if cursor else None
        if cursor is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        query = select(ImportJob).order_by(ImportJob.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(ImportJob.id < before)
        async with self.db.read() as session:
            rows = (await session.scalars(query)).all()
            page = rows[:limit]
            views = [await self._job_view(session, job) for job in page]
        token = encode_token({"before": page[-1].id}) if len(rows) > limit else ""
        return pb.ListImportJobsResponse(jobs=views, next_page_token=token)

    async def ListImportIssues(self, request: pb.ListImportIssuesRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListImportIssuesResponse:
        require_super_admin(caller_of(context), "viewing imports")
        job_id = parse_int_id(request.job_id, "job_id")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else None
        if cursor is not None and not isinstance(after, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        # Issues are written batch by batch in row order, so id order is row order.
        query = select(ImportRowIssue).where(ImportRowIssue.job_id == job_id).order_by(ImportRowIssue.id) \
            .limit(limit + 1)
        if after is not None:
            query = query.where(ImportRowIssue.id > after)
        async with self.db.read() as session:
            if await session.get(ImportJob, job_id) is None:
                raise NotFound(f"no import job {job_id}", field="job_id")
            rows = (await session.scalars(query)).all()
        page = rows[:limit]
        token = encode_token({"after": page[-1].id}) if len(rows) > limit else ""
        return pb.ListImportIssuesResponse(issues=[pb.ImportIssue(
            row_number=i.row_number, status=i.status, field=i.field, reason=i.reason) for i in page],
            next_page_token=token)

    # --- download

    async def ExportMembers(self, request: pb.ExportMembersRequest,
                            context: grpc.aio.ServicerContext) -> pb.ExportMembersResponse:
        caller = caller_of(context)
        require_super_admin(caller, "downloading member data")
        if request.max_rows < 0:
            raise InvalidArgument("must not be negative", field="max_rows")
        check_filter(request.filter)
        if request.filter.HasField("crowd"):
            raise InvalidArgument("save the crowd as a package and download its members (CrowdService)",
                                  field="filter.crowd")
        order_by = known_enum(mpb.MemberOrderBy, request.order_by, "order_by")
        cap = min(request.max_rows or self.export_max_rows, self.export_max_rows)
        async with self.db.read() as session:
            data, count, truncated = await export_members(session, caller, request.filter, order_by,
                                                          request.ascending, cap)
        return pb.ExportMembersResponse(csv=data, row_count=count, truncated=truncated)
