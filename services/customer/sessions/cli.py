"""``crowdpack staff create-admin``: the first super admin, from the command line.

It calls the running customer service (OrganizationService.CreateStaff, then
SessionService.SetStaffPassword) with a SYSTEM identity signed by the configured key (the state
folder's development key under ``make run``). The password is read from a prompt, or from
standard input with ``--password-stdin``; it is never echoed, printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid

import grpc

from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.customer.v1 import session_service_pb2 as pb
from crowdpack.customer.v1 import session_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, Role
from services.common.config import CommonSettings
from services.common.errors import InvalidArgument
from services.common.identity import signer_from
from services.customer.sessions.passwords import check_new_password


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password for the new super admin: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def create_admin(args: argparse.Namespace) -> int:
    password = _password(args)
    try:  # before the staff member exists: a refused password must leave nothing behind to retry against
        check_new_password(password, "password")
    except InvalidArgument as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    metadata = signer_from(CommonSettings(), issuer="crowdpack-cli", ttl_s=300).metadata(
        Caller(staff_id="crowdpack-cli", role=Role.SYSTEM))
    run = uuid.uuid4().hex
    try:
        with grpc.insecure_channel(args.customer) as channel:
            staff = org_grpc.OrganizationServiceStub(channel).CreateStaff(org_pb.CreateStaffRequest(
                request_id=f"cli-admin-{run}", name=args.name, phone=args.phone,
                role=org_pb.STAFF_ROLE_SUPER_ADMIN), metadata=metadata, timeout=10).staff
            pb_grpc.SessionServiceStub(channel).SetStaffPassword(pb.SetStaffPasswordRequest(
                request_id=f"cli-password-{run}", staff_id=staff.staff_id, new_password=password),
                metadata=metadata, timeout=30)
    except grpc.RpcError as err:
        print(f"error: {err.details() or err.code().name}", file=sys.stderr)
        return 1
    print(f"super admin {staff.staff_id} ({args.name}) created; sign in with POST /v1/sessions "
          f"{{\"login\": \"{args.phone}\", \"password\": \"...\"}}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    staff = sub.add_parser("staff", help="staff accounts")
    commands = staff.add_subparsers(dest="staff_command", required=True)
    admin = commands.add_parser("create-admin", help="create a super admin with a password (the first sign-in)")
    admin.add_argument("--phone", required=True, help="their mobile number: the login")
    admin.add_argument("--name", default="超级管理员", help="display name")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    admin.add_argument("--customer", default="127.0.0.1:50051", help="customer service gRPC address")
    admin.set_defaults(func=create_admin)
