"""A member's orders, newest first: the member detail's consumption view (消费详情, document 001).

Filtered by mall, store, brand (the brand of the order's store, from the ledger's projection of the
customer service's stores), channel and time; keyset-paged on (occurred_at, id) descending, the
token tied to the filters it was made with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import InvalidArgument
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import aware, known_enum
from services.ledger.convert import order_to_proto
from services.ledger.inputs import id_text, member_id, optional_time
from services.ledger.models import Order, StoreState

MAX_BRAND = 100


@dataclass(frozen=True)
class OrderFilter:
    member_id: str
    mall_id: str = ""
    store_id: str = ""
    brand: str = ""
    channels: tuple[int, ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def fingerprint(self) -> str:
        key = [self.member_id, self.mall_id, self.store_id, self.brand, self.channels,
               self.start and self.start.isoformat(), self.end and self.end.isoformat()]
        return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]


def parse_filter(request: pb.ListMemberOrdersRequest) -> OrderFilter:
    start, end = optional_time(request, "start_time"), optional_time(request, "end_time")
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")
    brand = request.brand.strip()
    if len(brand) > MAX_BRAND or not brand.isprintable():
        raise InvalidArgument(f"must be at most {MAX_BRAND} printable characters", field="brand")
    channels = tuple(sorted({known_enum(pb.OrderChannel, c, f"channels[{i}]", allow_unspecified=False)
                             for i, c in enumerate(request.channels)}))
    return OrderFilter(member_id=member_id(request.member_id), mall_id=id_text(request.mall_id, "mall_id"),
                       store_id=id_text(request.store_id, "store_id"), brand=brand, channels=channels,
                       start=start, end=end)


async def page(session: AsyncSession, filt: OrderFilter, limit: int,
               after: tuple[datetime, int] | None) -> Sequence[Row]:
    """Up to ``limit`` orders (with their store's name and brand) after the cursor, newest first."""
    query = (select(Order, StoreState.name, StoreState.brand)
             .outerjoin(StoreState, StoreState.store_id == Order.store_id)
             .where(Order.member_id == filt.member_id))
    if filt.mall_id:
        query = query.where(Order.mall_id == filt.mall_id)
    if filt.store_id:
        query = query.where(Order.store_id == filt.store_id)
    if filt.brand:
        query = query.where(StoreState.brand == filt.brand)
    if filt.channels:
        query = query.where(Order.channel.in_(filt.channels))
    if filt.start is not None:
        query = query.where(Order.occurred_at >= filt.start)
    if filt.end is not None:
        query = query.where(Order.occurred_at < filt.end)
    if after is not None:
        at, order_id = after
        query = query.where(or_(Order.occurred_at < at, and_(Order.occurred_at == at, Order.id < order_id)))
    query = query.order_by(Order.occurred_at.desc(), Order.id.desc()).limit(limit)
    return (await session.execute(query)).all()


def cursor_of(token: str, fingerprint: str) -> tuple[datetime, int] | None:
    cursor = decode_token(token)
    if cursor is None:
        return None
    try:
        if cursor.get("list") != fingerprint or not isinstance(cursor.get("id"), int):
            raise ValueError
        return aware(datetime.fromisoformat(cursor["at"])), cursor["id"]
    except (ValueError, TypeError, KeyError):
        raise InvalidArgument("is not a token this list returned (with these filters)", field="page_token") from None


async def list_member_orders(session: AsyncSession, request: pb.ListMemberOrdersRequest,
                             filt: OrderFilter) -> pb.ListMemberOrdersResponse:
    limit = page_size(request.page_size)
    fingerprint = filt.fingerprint()
    rows = await page(session, filt, limit + 1, cursor_of(request.page_token, fingerprint))
    more = len(rows) > limit
    rows = rows[:limit]
    orders = []
    for order, store_name, brand in rows:
        message = order_to_proto(order)
        message.store_name, message.brand = store_name or "", brand or ""
        orders.append(message)
    token = ""
    if more:
        last = rows[-1][0]
        token = encode_token({"at": aware(last.occurred_at).isoformat(), "id": last.id, "list": fingerprint})
    return pb.ListMemberOrdersResponse(orders=orders, next_page_token=token)
