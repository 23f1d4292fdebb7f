"""变动凭证 (document 001): the receipt photo or scan an operator uploads to back a manual adjustment.

A file is stored once per request_id with its member, checked by its first bytes to be a JPEG,
PNG or PDF and at most 10 MB. Its reference, ``/v1/voucherFiles/<id>`` (the gateway's route for
GetVoucherFile), is what AdjustBalanceRequest.voucher carries. Uploading takes an administrator
who may adjust the member's ledger; reading takes one who may see it (services/ledger/scope.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import PurePosixPath, PureWindowsPath

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import check_request_id
from services.common.validation import name_text
from services.ledger.inputs import member_id as parse_member_id
from services.ledger.models import VoucherFile
from services.ledger.repository import AccountRepository
from services.ledger.scope import require_visible

MAX_BYTES = 10 * 1024 * 1024
SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"%PDF-", "application/pdf"))
REFERENCE = "/v1/voucherFiles/{}"


def content_type_of(head: bytes) -> str:
    """The file's type from its first bytes: INVALID_ARGUMENT for anything but JPEG, PNG or PDF."""
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    raise InvalidArgument("must be a JPEG, PNG or PDF file", field="file")


def base_name(value: str) -> str:
    name = PureWindowsPath(PurePosixPath(value.strip()).name).name or "voucher"
    return name_text(name[-255:], "file_name", 255)


def to_proto(row: VoucherFile) -> pb.VoucherFile:
    created = Timestamp()
    created.FromDatetime(row.created_at)
    return pb.VoucherFile(file_id=str(row.id), member_id=row.member_id, file_name=row.file_name,
                          content_type=row.content_type, size=row.size, sha256=row.sha256,
                          uploader_id=row.uploader_id, create_time=created, reference=REFERENCE.format(row.id))


async def receive(messages: AsyncIterator[pb.UploadVoucherFileRequest]) -> tuple[str, str, str, bytes]:
    """(request_id, member_id, file name, content) of an upload stream, checked; nothing is stored yet."""
    request_id = member = name = ""
    content = bytearray()
    first = True
    async for message in messages:
        if first:
            check_request_id(message.request_id)
            request_id, member, name = message.request_id, parse_member_id(message.member_id), base_name(
                message.file_name)
            first = False
        content += message.chunk
        if len(content) > MAX_BYTES:
            raise InvalidArgument(f"is larger than {MAX_BYTES // (1024 * 1024)} MB", field="file")
    if first:
        raise InvalidArgument("is required on every mutation", field="request_id")
    if not content:
        raise InvalidArgument("is empty", field="file")
    return request_id, member, name, bytes(content)


async def store(db: Database, caller: Caller, request_id: str, member: str, name: str, content: bytes,
                now: datetime) -> pb.UploadVoucherFileResponse:
    """Keeps the file once per request_id: a repeat with the same content answers as the first did."""
    kind = content_type_of(content[:16])
    digest = hashlib.sha256(content).hexdigest()
    async with db.read() as session:
        if not await AccountRepository(session).for_member(member):
            raise NotFound(f"no member {member}", field="member_id")
        await require_visible(session, caller, member)
        earlier = await _by_request(session, request_id)
    if earlier is None:
        row = VoucherFile(request_id=request_id, member_id=member, file_name=name, content_type=kind,
                          size=len(content), sha256=digest, content=content, uploader_id=caller.staff_id,
                          created_at=now)
        try:
            async with db.transaction() as session:
                session.add(row)
            return pb.UploadVoucherFileResponse(file=to_proto(row))
        except IntegrityError:  # the same request_id, concurrently
            async with db.read() as session:
                earlier = await _by_request(session, request_id)
            if earlier is None:
                raise
    if earlier.sha256 != digest or earlier.member_id != member:
        raise AlreadyExists("was already used for a different file", field="request_id")
    return pb.UploadVoucherFileResponse(file=to_proto(earlier))


async def fetch(session: AsyncSession, caller: Caller, file_id: int) -> pb.GetVoucherFileResponse:
    row = await session.get(VoucherFile, file_id)
    if row is None:
        raise NotFound(f"no voucher file {file_id}", field="file_id")
    await require_visible(session, caller, row.member_id)
    return pb.GetVoucherFileResponse(file=to_proto(row), content=row.content)


async def _by_request(session: AsyncSession, request_id: str) -> VoucherFile | None:
    return await session.scalar(select(VoucherFile).where(VoucherFile.request_id == request_id))
