"""Voucher redemptions: a member redeems a voucher (a coupon) at a mall.

A voucher code is redeemed once; redeeming it again, under another request, is ALREADY_EXISTS.
A voucher bought with points spends them in the same transaction (a SPEND entry, oldest points
first, never below zero). Vouchers are a member benefit, so a disabled member cannot redeem one.
``ledger.voucher.redeemed`` tells the customer service, for which the mall becomes one the
member interacted with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.validation import MAX_MONEY, bounded_text, to_timestamp
from services.ledger.convert import posted_to_proto
from services.ledger.inputs import external_key, id_text, member_id, past_time
from services.ledger.journal import Journal
from services.ledger.journal_events import stage_event, write_staged_events
from services.ledger.models import MemberState, VoucherRedemption
from services.ledger.places import checked
from services.ledger.postings import Posting

MAX_CODE = 64
MAX_NAME = 100


@dataclass(frozen=True)
class NewRedemption:
    member_id: str
    mall_id: str
    store_id: str
    voucher_code: str
    voucher_name: str
    points_cost: int
    occurred_at: datetime


def voucher_code(value: str) -> str:
    return external_key(value, "voucher_code", MAX_CODE)


def parse_redemption(request: pb.RedeemVoucherRequest, now: datetime) -> NewRedemption:
    mall = id_text(request.mall_id, "mall_id")
    if not mall:
        raise InvalidArgument("is required", field="mall_id")
    if not 0 <= request.points_cost <= MAX_MONEY:
        raise InvalidArgument(f"must be 0 to {MAX_MONEY}", field="points_cost")
    return NewRedemption(
        member_id=member_id(request.member_id), mall_id=mall, store_id=id_text(request.store_id, "store_id"),
        voucher_code=voucher_code(request.voucher_code),
        voucher_name=bounded_text(request.voucher_name, "voucher_name", MAX_NAME), points_cost=request.points_cost,
        occurred_at=past_time(request, "occur_time", now) or now)


def redemption_to_proto(row: VoucherRedemption) -> pb.VoucherRedemption:
    return pb.VoucherRedemption(
        redemption_id=str(row.id), member_id=row.member_id, mall_id=row.mall_id, store_id=row.store_id,
        voucher_code=row.voucher_code, voucher_name=row.voucher_name, points_cost=row.points_cost,
        entry_id=str(row.entry_id) if row.entry_id else "", occur_time=to_timestamp(row.occurred_at),
        create_time=to_timestamp(row.created_at), operator_id=row.operator_id)


async def by_code(session: AsyncSession, code: str) -> VoucherRedemption | None:
    return await session.scalar(select(VoucherRedemption).where(VoucherRedemption.voucher_code == code))


async def redeem(session: AsyncSession, request_id: str, new: NewRedemption, *, now: datetime,
                 operator_id: str) -> pb.RedeemVoucherResponse:
    await checked(session, new.mall_id, new.store_id)
    if await by_code(session, new.voucher_code) is not None:
        raise AlreadyExists(f"voucher {new.voucher_code} was already redeemed", field="voucher_code")
    journal = Journal(session, now=now, operator_id=operator_id)
    await journal.account(new.member_id, pb.ASSET_POINTS)  # the member is one the ledger knows
    state = await session.get(MemberState, new.member_id)
    if state is not None and state.disabled:
        raise FailedPrecondition(f"member {new.member_id} is disabled: vouchers are a member benefit",
                                 field="member_id")
    posted = []
    if new.points_cost:
        posted = await journal.post(request_id, [Posting(
            member_id=new.member_id, asset=pb.ASSET_POINTS, kind=pb.ENTRY_KIND_SPEND, amount=-new.points_cost,
            note=f"voucher {new.voucher_code}", document_at=new.occurred_at, mall_id=new.mall_id,
            store_id=new.store_id, field="", amount_field="points_cost")])
    row = VoucherRedemption(
        request_id=request_id, member_id=new.member_id, mall_id=new.mall_id, store_id=new.store_id,
        voucher_code=new.voucher_code, voucher_name=new.voucher_name, points_cost=new.points_cost,
        entry_id=posted[0].id if posted else None, operator_id=operator_id, occurred_at=new.occurred_at,
        created_at=now)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent redemption of the same code committed first (PostgreSQL).
        raise AlreadyExists(f"voucher {new.voucher_code} was already redeemed", field="voucher_code") from None
    stage_event(session, events.VoucherRedeemed(
        redemption_id=str(row.id), member_id=row.member_id, mall_id=row.mall_id, store_id=row.store_id,
        voucher_code=row.voucher_code, points_cost=row.points_cost, occur_time=to_timestamp(row.occurred_at)))
    await write_staged_events(session)
    return pb.RedeemVoucherResponse(redemption=redemption_to_proto(row), entries=[posted_to_proto(p) for p in posted])


async def find(session: AsyncSession, request: pb.GetVoucherRedemptionRequest) -> VoucherRedemption:
    code = voucher_code(request.voucher_code)
    row = await by_code(session, code)
    if row is None:
        raise NotFound(f"voucher {code} has not been redeemed", field="voucher_code")
    return row
