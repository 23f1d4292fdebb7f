"""Opening a member's accounts when the customer service announces the member."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from crowdpack.events.v1 import ledger_events_pb2 as events
from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.clock import utcnow
from services.common.outbox import add_event
from services.common.validation import to_timestamp
from services.ledger.models import Account, OutboxEvent
from services.ledger.repository import AccountRepository

ASSETS = (pb.ASSET_POINTS, pb.ASSET_BALANCE, pb.ASSET_RED_PACKET)


async def open_member_accounts(session: AsyncSession, event: customer_events.MemberCreated) -> None:
    """Handles customer.member.created: one zero-balance account per asset, each announced."""
    repo = AccountRepository(session)
    have = {a.asset for a in await repo.for_member(event.member_id)}
    now = utcnow()
    for asset in ASSETS:
        if asset in have:
            continue
        account = await repo.add(Account(member_id=event.member_id, asset=asset, balance=0, opened_at=now))
        add_event(session, OutboxEvent, events.AccountOpened(
            account_id=str(account.id), member_id=account.member_id, asset=pb.Asset.Name(asset),
            open_time=to_timestamp(now)))
