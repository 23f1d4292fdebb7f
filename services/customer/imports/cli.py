"""``crowdpack import FILE``: uploads a member file to the customer service and follows the job.

Progress goes to standard error (a bar when it is a terminal, a line per 10% otherwise), the
summary to standard output. Any failure is one ``error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, Role
from services.common.config import CommonSettings
from services.common.identity import signer_from

CHUNK = 1024 * 1024
ENCODINGS = {"auto": pb.IMPORT_ENCODING_UNSPECIFIED, "utf8": pb.IMPORT_ENCODING_UTF8,
             "utf-8": pb.IMPORT_ENCODING_UTF8, "gb18030": pb.IMPORT_ENCODING_GB18030,
             "gbk": pb.IMPORT_ENCODING_GB18030, "gb2312": pb.IMPORT_ENCODING_GB18030, "big5": pb.IMPORT_ENCODING_BIG5}
MODES = {"normal": pb.IMPORT_MODE_NORMAL, "fast": pb.IMPORT_MODE_FAST}
BAR = 30
ISSUES_SHOWN = 10


def default_address() -> str:
    host = os.environ.get("CROWDPACK_CUSTOMER_GRPC_HOST", "127.0.0.1")
    return f"{host}:{os.environ.get('CROWDPACK_CUSTOMER_GRPC_PORT', '50051')}"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help="import members from a CSV or XLSX file (with a progress bar)")
    p.add_argument("file", type=Path, help="a .csv or .xlsx file, at most 100 MB")
    p.add_argument("--mode", choices=sorted(MODES), default="normal",
                   help="normal: events and timeline per change; fast: bulk, one completion event")
    p.add_argument("--tag", default="", help="tag every imported member (created when missing)")
    p.add_argument("--encoding", choices=sorted(ENCODINGS), default="auto", help="CSV text encoding")
    p.add_argument("--time-zone", default="", help="zone for times without an offset (default Asia/Shanghai)")
    p.add_argument("--customer", default=default_address(), help="customer service gRPC address")
    p.add_argument("--operator", default=os.environ.get("USER", "cli"), help="staff id recorded as the operator")
    p.set_defaults(func=run)


class Progress:
    def __init__(self) -> None:
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.last_tenth = -1

    def show(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self.tty:
            filled = int(share * BAR)
            self.stream.write(f"\r[{'#' * filled}{'-' * (BAR - filled)}] {share:4.0%} {done:,}/{total:,} rows")
            self.stream.flush()
        elif int(share * 10) > self.last_tenth:
            self.last_tenth = int(share * 10)
            self.stream.write(f"{share:4.0%} {done:,}/{total:,} rows\n")
            self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _chunks(path: Path, request_id: str) -> Iterator[pb.UploadImportFileRequest]:
    with open(path, "rb") as f:
        yield pb.UploadImportFileRequest(request_id=request_id, file_name=path.name, chunk=f.read(CHUNK))
        while block := f.read(CHUNK):
            yield pb.UploadImportFileRequest(chunk=block)


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    # The operator's tool signs a super admin identity with the configured key (the state folder's in development).
    metadata = signer_from(CommonSettings(), issuer="crowdpack-cli", ttl_s=3600).metadata(
        Caller(staff_id=args.operator, role=Role.SUPER_ADMIN))
    run_id = uuid.uuid4().hex
    with grpc.insecure_channel(args.customer) as channel:
        stub = pb_grpc.ImportServiceStub(channel)
        print(f"uploading {path.name} ({path.stat().st_size:,} bytes) to {args.customer} ...", file=sys.stderr)
        uploaded = stub.UploadImportFile(_chunks(path, f"cli-upload-{run_id}"), metadata=metadata).file
        job = stub.StartImport(pb.StartImportRequest(
            request_id=f"cli-start-{run_id}", file_id=uploaded.file_id, mode=MODES[args.mode],
            encoding=ENCODINGS[args.encoding], tag_name=args.tag, time_zone=args.time_zone),
            metadata=metadata).job
        progress = Progress()
        while True:
            progress.show(job.processed_rows, job.total_rows)
            if job.state in (pb.IMPORT_JOB_STATE_SUCCEEDED, pb.IMPORT_JOB_STATE_FAILED):
                break
            time.sleep(0.3)
            job = stub.GetImportJob(pb.GetImportJobRequest(job_id=job.job_id), metadata=metadata).job
        progress.end()
        if job.state == pb.IMPORT_JOB_STATE_FAILED:
            raise RuntimeError(f"import job {job.job_id} failed: {job.error_message}")
        issues = stub.ListImportIssues(pb.ListImportIssuesRequest(job_id=job.job_id, page_size=ISSUES_SHOWN),
                                       metadata=metadata)
    skipped = job.invalid + job.duplicate + job.conflict
    print(f"import job {job.job_id}: {job.total_rows:,} rows, created {job.created:,}, updated {job.updated:,}, "
          f"unchanged {job.unchanged:,}, skipped {skipped:,} (invalid {job.invalid:,}, duplicate {job.duplicate:,}, "
          f"conflict {job.conflict:,})")
    for issue in issues.issues:
        print(f"  row {issue.row_number}: {issue.reason}")
    if issues.next_page_token:
        print(f"  ... {skipped - len(issues.issues):,} more (ListImportIssues job_id={job.job_id})")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _import(args)
    except grpc.RpcError as err:
        detail = err.details() if hasattr(err, "details") else str(err)
        print(f"\nerror: {err.code().name}: {detail}" if hasattr(err, "code") else f"\nerror: {detail}",
              file=sys.stderr)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
    return 1
