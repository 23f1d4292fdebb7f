"""Rows to the Member message.

One conversion, from plain values: the ``customer`` columns in ``MEMBER_COLUMNS`` order and the
``customer_stats`` columns in ``STATS_SHOWN`` order, as a Core select of ``member_view_columns()`` hands
them over (GetMember, ListMembers) or as ``member_to_proto`` reads them off mapped rows (the writes). A Core
row is converted in about a third of the time a mapped row took: no instrumented attribute is read and no
object loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from crowdpack.customer.v1 import member_pb2 as pb
from services.customer.models import Customer, CustomerStats

# The customer columns a Member shows, in the order ``member_from_values`` reads them.
MEMBER_COLUMNS = ("id", "kind", "phone", "email", "name", "real_name", "gender", "birthday", "avatar_url",
                  "wechat_openid", "wechat_unionid", "douyin_id", "alipay_id", "xiaohongshu_id", "registered_at",
                  "registration_mall_id", "card_opened", "card_number", "card_open_time", "card_open_mall_id",
                  "card_open_channel", "promotion_channel", "open_scene", "level", "level_frozen", "level_expires_at",
                  "group_id", "disabled", "review_status", "store_member", "virtual", "created_at", "updated_at")
# The customer_stats columns a Member shows, likewise (customer_id first: None when a member has no stats row).
STATS_SHOWN = ("customer_id", "points_balance", "red_packet_balance_fen", "stored_balance_fen", "spend_count",
               "spend_total_fen", "first_spend_at", "last_spend_at", "cumulative_spend_fen", "online_count",
               "online_total_fen", "online_last_at", "offline_count", "offline_total_fen", "offline_last_at")
_member_values = attrgetter(*MEMBER_COLUMNS)
_stats_values = attrgetter(*STATS_SHOWN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _set_ts(field: Timestamp, dt: datetime) -> None:
    """Sets the Timestamp field ``field`` to ``dt`` (naive means UTC, as SQLite hands it back) where it is: no
    Timestamp is made to be copied in."""
    since = dt - (_NAIVE_EPOCH if dt.tzinfo is None else _EPOCH)
    field.seconds = since.days * 86_400 + since.seconds
    field.nanos = since.microseconds * 1000


# Each MemberStats field set from a row of ``STATS_SHOWN`` values, and where in the row its value is.
_STATS_INTS = tuple((name, STATS_SHOWN.index(name)) for name in (
    "points_balance", "red_packet_balance_fen", "stored_balance_fen", "spend_count", "spend_total_fen",
    "cumulative_spend_fen", "online_count", "online_total_fen", "offline_count", "offline_total_fen"))
_STATS_TIMES = tuple((field, STATS_SHOWN.index(column)) for field, column in (
    ("first_spend_time", "first_spend_at"), ("last_spend_time", "last_spend_at"),
    ("online_last_time", "online_last_at"), ("offline_last_time", "offline_last_at")))


def member_from_values(values: Sequence[Any], stats: Sequence[Any] | None = None, *, tags: list[str] | None = None,
                       interaction_mall_ids: list[int] | None = None,
                       into: RepeatedCompositeFieldContainer[pb.Member] | None = None) -> pb.Member:
    """The Member of a customer's ``MEMBER_COLUMNS`` values and, if it has a stats row, its ``STATS_SHOWN``.

    Made in place: the scalars as keyword arguments, the card from a dict, each Timestamp set on its field and the
    stats set field by field, so that no message is made only to be copied into another (a page of twenty members
    took ~0.2 ms, twice what it takes now). The same message as building every part and passing it in: the card
    is always there, the stats whenever the member has a stats row, a time whenever it is set. With ``into``, the
    member is made as a new last item of that repeated field (a reply's page), not copied into it afterwards."""
    (member_id, kind, phone, email, name, real_name, gender, birthday, avatar_url, wechat_openid, wechat_unionid,
     douyin_id, alipay_id, xiaohongshu_id, registered_at, registration_mall_id, card_opened, card_number,
     card_open_time, card_open_mall_id, card_open_channel, promotion_channel, open_scene, level, level_frozen,
     level_expires_at, group_id, disabled, review_status, store_member, virtual, created_at, updated_at) = values
    member = (pb.Member if into is None else into.add)(
        member_id=str(member_id), kind=kind, phone=phone or "", email=email or "", name=name, real_name=real_name,
        gender=gender, birthday=birthday.isoformat() if birthday else "", avatar_url=avatar_url,
        wechat_openid=wechat_openid or "", wechat_unionid=wechat_unionid or "", douyin_id=douyin_id or "",
        alipay_id=alipay_id or "", xiaohongshu_id=xiaohongshu_id or "",
        registration_mall_id=str(registration_mall_id or ""),
        card={"opened": card_opened, "card_number": card_number or "", "open_mall_id": str(card_open_mall_id or ""),
              "open_channel": card_open_channel, "promotion_channel": promotion_channel, "open_scene": open_scene},
        level=level, level_frozen=level_frozen, group_id=str(group_id or ""), disabled=disabled,
        review_status=review_status, store_member=store_member, virtual=virtual,
    )
    if registered_at is not None:
        _set_ts(member.registration_time, registered_at)
    if card_open_time is not None:
        _set_ts(member.card.open_time, card_open_time)
    if level_expires_at is not None:
        _set_ts(member.level_expire_time, level_expires_at)
    if created_at is not None:
        _set_ts(member.create_time, created_at)
    if updated_at is not None:
        _set_ts(member.update_time, updated_at)
    if tags:
        member.tags.extend(tags)
    if interaction_mall_ids:
        member.interaction_mall_ids.extend([str(m) for m in interaction_mall_ids])
    if stats is not None and stats[0] is not None:
        shown = member.stats
        shown.SetInParent()
        # A zero is what an unset integer already reads (and is never written): only the others are set.
        for name, i in _STATS_INTS:
            if stats[i]:
                setattr(shown, name, stats[i])
        for name, i in _STATS_TIMES:
            if stats[i] is not None:
                _set_ts(getattr(shown, name), stats[i])
    return member


def member_to_proto(c: Customer, *, tags: list[str] | None = None, stats: CustomerStats | None = None,
                    interaction_mall_ids: list[int] | None = None) -> pb.Member:
    """The Member of a mapped row (and its mapped stats row)."""
    return member_from_values(_member_values(c), None if stats is None else _stats_values(stats), tags=tags,
                              interaction_mall_ids=interaction_mall_ids)


def member_from_row(row: Sequence[Any], *, tags: list[str] | None = None,
                    interaction_mall_ids: list[int] | None = None,
                    into: RepeatedCompositeFieldContainer[pb.Member] | None = None) -> pb.Member:
    """The Member of a row that starts with ``MEMBER_COLUMNS`` and goes on with ``STATS_SHOWN`` (the view's select)."""
    return member_from_values(row[:_WIDTH], row[_WIDTH:_VIEW_WIDTH], tags=tags,
                              interaction_mall_ids=interaction_mall_ids, into=into)


_WIDTH = len(MEMBER_COLUMNS)
_VIEW_WIDTH = _WIDTH + len(STATS_SHOWN)
