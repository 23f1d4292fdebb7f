"""crowdpack.ledger.v1.LedgerService over gRPC."""

from __future__ import annotations

import grpc

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from services.common.db import Database
from services.common.errors import NotFound
from services.common.validation import known_enum, parse_int_id, to_timestamp
from services.ledger.models import Account
from services.ledger.repository import AccountRepository


def account_to_proto(account: Account) -> pb.Account:
    return pb.Account(account_id=str(account.id), member_id=account.member_id, asset=account.asset,
                      balance=account.balance, open_time=to_timestamp(account.opened_at))


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def GetBalances(self, request: pb.GetBalancesRequest,
                          context: grpc.aio.ServicerContext) -> pb.GetBalancesResponse:
        parse_int_id(request.member_id, "member_id")
        asset = known_enum(pb.Asset, request.asset, "asset")
        async with self.db.read() as session:
            accounts = await AccountRepository(session).for_member(request.member_id, asset)
        if not accounts:
            raise NotFound(f"member {request.member_id} has no accounts", field="member_id")
        return pb.GetBalancesResponse(accounts=[account_to_proto(a) for a in accounts])
