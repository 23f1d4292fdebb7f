"""crowdpack.customer.v1.ImportService: upload, preview, import jobs, skipped-row reports, member download."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_service_pb2 as mpb
from services.common.auth import caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.idempotency import check_request_id
from services.common.pagination import before_id, decode_token, page_size
from services.common.validation import bounded_text, enum_of, known_enum, parse_int_id
from services.customer.imports import reading
from services.customer.imports.jobs import ImportRunner
from services.customer.imports.service import ImportService
from services.customer.members.repository import check_filter
from services.customer.members.service import CrowdMembers
from services.customer.scope import require_super_admin

DEFAULT_ZONE = "Asia/Shanghai"


def zone_of(value: str) -> tuple[str, ZoneInfo]:
    name = value.strip() or DEFAULT_ZONE
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"{name!r} is not an IANA time zone (e.g. Asia/Shanghai)", field="time_zone") from None


def import_kind(value: int) -> int:
    """The file's kind; UNSPECIFIED means members."""
    return known_enum(pb.ImportKind, value, "kind") or pb.IMPORT_KIND_MEMBERS


def base_name(value: str) -> str:
    name = PureWindowsPath(PurePosixPath(value.strip()).name).name
    if not name:
        raise InvalidArgument("is required in the first message", field="file_name")
    if len(name) > 255:
        raise InvalidArgument("must be at most 255 characters", field="file_name")
    return name


class ImportServicer(pb_grpc.ImportServiceServicer):
    def __init__(self, db: Database, runner: ImportRunner, export_max_rows: int, clock: Clock = utcnow,
                 crowds: CrowdMembers | None = None) -> None:
        self.service = ImportService(db, runner, clock, crowds)
        self.runner = runner
        self.export_max_rows = export_max_rows

    # --- upload

    async def UploadImportFile(self, request_iterator: AsyncIterator[pb.UploadImportFileRequest],
                               context: grpc.aio.ServicerContext) -> pb.UploadImportFileResponse:
        caller = caller_of(context)
        require_super_admin(caller, "importing members")
        request_id = file_name = ""
        size = 0
        digest = hashlib.sha256()
        path: Path | None = None
        out: BinaryIO | None = None
        try:
            async for message in request_iterator:
                if out is None:  # the first message (path and out are set together)
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
            return await self.service.save_upload(caller, request_id, file_name, path, size, digest.hexdigest())
        finally:
            if out is not None:
                out.close()
            if path is not None:
                path.unlink(missing_ok=True)

    # --- preview and start

    async def PreviewImport(self, request: pb.PreviewImportRequest,
                            context: grpc.aio.ServicerContext) -> pb.PreviewImportResponse:
        require_super_admin(caller_of(context), "importing members")
        file_id = parse_int_id(request.file_id, "file_id")
        requested = known_enum(pb.ImportEncoding, request.encoding, "encoding")
        _, zone = zone_of(request.time_zone)
        return await self.service.preview(file_id, requested, zone, import_kind(request.kind))

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
        kind = import_kind(request.kind)
        if kind == pb.IMPORT_KIND_BUSINESS_CUSTOMERS and mode != pb.IMPORT_MODE_NORMAL:
            raise InvalidArgument("business customer imports run in normal mode (IMPORT_MODE_NORMAL)", field="mode")
        return await self.service.start(request, caller, file_id, mode, requested, tag_name, zone_name, kind)

    # --- jobs and their reports

    async def GetImportJob(self, request: pb.GetImportJobRequest,
                           context: grpc.aio.ServicerContext) -> pb.GetImportJobResponse:
        require_super_admin(caller_of(context), "viewing imports")
        return pb.GetImportJobResponse(job=await self.service.job(parse_int_id(request.job_id, "job_id")))

    async def ListImportJobs(self, request: pb.ListImportJobsRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListImportJobsResponse:
        require_super_admin(caller_of(context), "viewing imports")
        limit = page_size(request.page_size)
        page = await self.service.jobs(limit, before_id(request.page_token))
        return pb.ListImportJobsResponse(jobs=page.items,
                                         next_page_token=page.next_token(lambda j: {"before": int(j.job_id)}))

    async def ListImportIssues(self, request: pb.ListImportIssuesRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListImportIssuesResponse:
        require_super_admin(caller_of(context), "viewing imports")
        job_id = parse_int_id(request.job_id, "job_id")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else None
        if cursor is not None and not isinstance(after, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        page = await self.service.issues(job_id, limit, after)
        return pb.ListImportIssuesResponse(issues=[pb.ImportIssue(
            row_number=i.row_number, status=enum_of(pb.ImportRowStatus, i.status), field=i.field,
            reason=i.reason) for i in page.items],
            next_page_token=page.next_token(lambda i: {"after": i.id}))

    # --- download

    async def ExportMembers(self, request: pb.ExportMembersRequest,
                            context: grpc.aio.ServicerContext) -> pb.ExportMembersResponse:
        caller = caller_of(context)
        require_super_admin(caller, "downloading member data")
        if request.max_rows < 0:
            raise InvalidArgument("must not be negative", field="max_rows")
        f = request.filter
        check_filter(f)
        crowd_mall_id = parse_int_id(f.crowd_mall_id, "filter.crowd_mall_id") if f.HasField("crowd") else None
        order_by = known_enum(mpb.MemberOrderBy, request.order_by, "order_by")
        cap = min(request.max_rows or self.export_max_rows, self.export_max_rows)
        data, count, truncated = await self.service.export(caller, f, crowd_mall_id, order_by, request.ascending, cap)
        return pb.ExportMembersResponse(csv=data, row_count=count, truncated=truncated)
