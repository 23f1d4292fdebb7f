"""Checks on the ledger's requests, before anything touches the database. Every error names its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import InvalidArgument
from services.common.validation import (
    MAX_MONEY,
    aware,
    bounded_text,
    known_enum,
    mainland_mobile,
    optional_id,
    parse_int_id,
)
from services.ledger.models import Order
from services.ledger.postings import Posting

MAX_EXTERNAL_NO = 64
MAX_BUYER_NAME = 100
# Clients' clocks run a little ahead; a document time up to this far ahead still counts as now.
CLOCK_SKEW = timedelta(seconds=60)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

POSTABLE_KINDS = (pb.ENTRY_KIND_EARN, pb.ENTRY_KIND_SPEND, pb.ENTRY_KIND_ADJUST, pb.ENTRY_KIND_RECHARGE,
                  pb.ENTRY_KIND_REFUND)
IMPLIED_DIRECTION: dict[int, int] = {
    pb.ENTRY_KIND_EARN: pb.DIRECTION_INCREASE, pb.ENTRY_KIND_RECHARGE: pb.DIRECTION_INCREASE,
    pb.ENTRY_KIND_SPEND: pb.DIRECTION_DECREASE}


def member_id(value: str, field: str = "member_id") -> str:
    parse_int_id(value, field)
    return value


def id_text(value: str, field: str) -> str:
    """An optional numeric id kept as the text given (malls, stores: the customer service owns them)."""
    optional_id(value, field)
    return value


def positive_amount(value: int, field: str) -> int:
    if value <= 0:
        raise InvalidArgument("must be positive", field=field)
    if value > MAX_MONEY:
        raise InvalidArgument(f"must be at most {MAX_MONEY}", field=field)
    return value


def external_key(value: str, field: str, limit: int = MAX_EXTERNAL_NO) -> str:
    """An identifier another system gave (an order number, a voucher code): 1 to ``limit`` printable characters."""
    if not value:
        raise InvalidArgument("is required", field=field)
    if len(value) > limit or not value.isprintable() or value != value.strip():
        raise InvalidArgument(f"must be 1 to {limit} printable characters without surrounding spaces", field=field)
    return value


ASSETS = frozenset(v for v in pb.Asset.values() if v)
KINDS = frozenset(v for v in pb.EntryKind.values() if v)
DIRECTIONS = frozenset(pb.Direction.values())


def asset(value: int, field: str = "asset") -> int:
    if value in ASSETS:  # the common case without building the enum's value list
        return value
    return known_enum(pb.Asset, value, field, allow_unspecified=False)


def past_time(message: Message, name: str, now: datetime, *, field: str | None = None,
              required: bool = False) -> datetime | None:
    """The Timestamp field ``name`` of ``message`` as an aware datetime; never in the future."""
    field = field or name
    if not message.HasField(name):
        if required:
            raise InvalidArgument("is required", field=field)
        return None
    ts = getattr(message, name)
    try:
        when = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument("is not a valid time", field=field) from None
    if when > now + CLOCK_SKEW:
        raise InvalidArgument("must not be in the future", field=field)
    if when < EARLIEST:
        raise InvalidArgument(f"must not be before {EARLIEST.date().isoformat()}", field=field)
    return when


def optional_time(message: Message, name: str, field: str | None = None) -> datetime | None:
    """A Timestamp used as a filter bound: any valid time, or None when unset."""
    if not message.HasField(name):
        return None
    try:
        return getattr(message, name).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument("is not a valid time", field=field or name) from None


def signed(amount: int, direction: int) -> int:
    return amount if direction == pb.DIRECTION_INCREASE else -amount


def parse_posting(message: pb.Posting, field: str, now: datetime) -> Posting:
    """A posting from the wire, checked; its reason template is resolved later, in the transaction.

    Fields are checked under their own names and named within ``field`` only on error (a batch has thousands).
    """
    try:
        posting = _posting(message, now)
    except InvalidArgument as err:
        raise err.within(field) from None
    posting.field = field
    return posting


def _posting(message: pb.Posting, now: datetime) -> Posting:
    member = member_id(message.member_id)
    which = asset(message.asset)
    kind = message.kind if message.kind in KINDS else known_enum(pb.EntryKind, message.kind, "kind",
                                                                  allow_unspecified=False)
    if kind not in POSTABLE_KINDS:
        raise InvalidArgument("must be EARN, SPEND, ADJUST, RECHARGE or REFUND (the ledger posts EXPIRE and "
                              "REVERSAL itself)", field="kind")
    if kind == pb.ENTRY_KIND_RECHARGE and which != pb.ASSET_BALANCE:
        raise InvalidArgument("only stored value (ASSET_BALANCE) is recharged", field="asset")
    if kind == pb.ENTRY_KIND_EARN and which == pb.ASSET_BALANCE:
        raise InvalidArgument("stored value is recharged, not earned", field="asset")
    amount = positive_amount(message.amount, "amount")
    direction = message.direction if message.direction in DIRECTIONS else known_enum(
        pb.Direction, message.direction, "direction")
    implied = IMPLIED_DIRECTION.get(kind)
    if implied is None and direction == pb.DIRECTION_UNSPECIFIED:
        raise InvalidArgument(f"is required for {pb.EntryKind.Name(kind)}", field="direction")
    if implied is not None and direction not in (pb.DIRECTION_UNSPECIFIED, implied):
        raise InvalidArgument(f"{pb.EntryKind.Name(kind)} is always {pb.Direction.Name(implied)}", field="direction")
    return Posting(
        member_id=member, asset=which, kind=kind, amount=signed(amount, implied or direction),
        reason_template_id=optional_id(message.reason_template_id, "reason_template_id"),
        note=bounded_text(message.note, "note"), voucher=bounded_text(message.voucher, "voucher"),
        document_at=past_time(message, "document_time", now),
        mall_id=id_text(message.mall_id, "mall_id"), store_id=id_text(message.store_id, "store_id"))


CHANNEL_NAMES = {v: pb.OrderChannel.Name(v) for v in pb.OrderChannel.values()}


@dataclass(frozen=True)
class NewOrder:
    member_id: str
    mall_id: str
    store_id: str
    channel: int
    external_order_no: str
    amount: int
    paid_amount: int
    occurred_at: datetime
    buyer_real_name: str = ""
    buyer_phone: str = ""

    def same_as(self, order: Order) -> bool:
        return (order.member_id, order.mall_id, order.store_id, order.amount, order.paid_amount,
                aware(order.occurred_at), order.buyer_real_name, order.buyer_phone) == (
                    self.member_id, self.mall_id, self.store_id, self.amount, self.paid_amount, self.occurred_at,
                    self.buyer_real_name, self.buyer_phone)


def external_order_no(value: str, field: str = "external_order_no") -> str:
    return external_key(value, field)


def buyer_real_name(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_BUYER_NAME or not value.isprintable():
        raise InvalidArgument(f"must be at most {MAX_BUYER_NAME} printable characters", field="buyer_real_name")
    return value


def parse_order(request: pb.RecordOrderRequest, now: datetime) -> NewOrder:
    amount = positive_amount(request.amount, "amount")
    if not 0 <= request.paid_amount <= amount:
        raise InvalidArgument("must be 0 to amount", field="paid_amount")
    mall = id_text(request.mall_id, "mall_id")
    if not mall:
        raise InvalidArgument("is required", field="mall_id")
    return NewOrder(
        member_id=member_id(request.member_id), mall_id=mall, store_id=id_text(request.store_id, "store_id"),
        channel=known_enum(pb.OrderChannel, request.channel, "channel", allow_unspecified=False),
        external_order_no=external_order_no(request.external_order_no), amount=amount,
        paid_amount=request.paid_amount,
        occurred_at=past_time(request, "occur_time", now, required=True),  # type: ignore[arg-type]  # required: set
        buyer_real_name=buyer_real_name(request.buyer_real_name),
        buyer_phone=mainland_mobile(request.buyer_phone, "buyer_phone") or "")
