"""Wiring: the ImportService servicer and its job runner (``ctx.extras["imports"]``)."""

from __future__ import annotations

from pathlib import Path

import grpc

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from services.common.server import Context
from services.customer.imports.jobs import ImportRunner
from services.customer.imports.servicer import ImportServicer
from services.customer.members.service import CrowdMembers

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ImportService"].full_name


def spool_dir(ctx: Context) -> Path:
    """Where uploads, checks, previews and import jobs keep their copy of a file."""
    return ctx.common.state_dir / "customer-import-spool"


def register_imports(server: grpc.aio.Server, ctx: Context, export_max_rows: int,
                     crowds: CrowdMembers | None = None) -> str:
    """Adds the servicer; returns its full service name. Run ``ctx.extras["imports"].run()`` in the background."""
    runner = ImportRunner(ctx.db, spool_dir(ctx))
    ctx.extras["imports"] = runner
    pb_grpc.add_ImportServiceServicer_to_server(ImportServicer(ctx.db, runner, export_max_rows, crowds=crowds), server)
    return SERVICE_NAME
