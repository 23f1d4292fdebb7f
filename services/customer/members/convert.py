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


def _ts(dt: datetime | None) -> Timestamp | None:
    """``dt`` (naive means UTC, as SQLite hands it back) as a Timestamp (``validation.to_timestamp`` without
    making a naive time aware first)."""
    if dt is None:
        return None
    since = dt - (_NAIVE_EPOCH if dt.tzinfo is None else _EPOCH)
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def member_from_values(values: Sequence[Any], stats: Sequence[Any] | None = None, *, tags: list[str] | None = None,
                       interaction_mall_ids: list[int] | None = None) -> pb.Member:
    """The Member of a customer's ``MEMBER_COLUMNS`` values and, if it has a stats row, its ``STATS_SHOWN``."""
    (member_id, kind, phone, email, name, real_name, gender, birthday, avatar_url, wechat_openid, wechat_unionid,
     douyin_id, alipay_id, xiaohongshu_id, registered_at, registration_mall_id, card_opened, card_number,
     card_open_time, card_open_mall_id, card_open_channel, promotion_channel, open_scene, level, level_frozen,
     level_expires_at, group_id, disabled, review_status, store_member, virtual, created_at, updated_at) = values
    shown = None
    if stats is not None and stats[0] is not None:
        (_, points, red_packet, stored, spend_count, spend_total, first_spend, last_spend, cumulative, online_count,
         online_total, online_last, offline_count, offline_total, offline_last) = stats
        shown = pb.MemberStats(
            points_balance=points, red_packet_balance_fen=red_packet, stored_balance_fen=stored,
            spend_count=spend_count, spend_total_fen=spend_total, first_spend_time=_ts(first_spend),
            last_spend_time=_ts(last_spend), cumulative_spend_fen=cumulative, online_count=online_count,
            online_total_fen=online_total, online_last_time=_ts(online_last), offline_count=offline_count,
            offline_total_fen=offline_total, offline_last_time=_ts(offline_last))
    return pb.Member(
        member_id=str(member_id), kind=kind, phone=phone or "", email=email or "", name=name, real_name=real_name,
        gender=gender, birthday=birthday.isoformat() if birthday else "", avatar_url=avatar_url,
        wechat_openid=wechat_openid or "", wechat_unionid=wechat_unionid or "", douyin_id=douyin_id or "",
        alipay_id=alipay_id or "", xiaohongshu_id=xiaohongshu_id or "", registration_time=_ts(registered_at),
        registration_mall_id=str(registration_mall_id or ""),
        card=pb.MemberCard(
            opened=card_opened, card_number=card_number or "", open_time=_ts(card_open_time),
            open_mall_id=str(card_open_mall_id or ""), open_channel=card_open_channel,
            promotion_channel=promotion_channel, open_scene=open_scene),
        level=level, level_frozen=level_frozen, level_expire_time=_ts(level_expires_at),
        group_id=str(group_id or ""), tags=tags or [], disabled=disabled, review_status=review_status,
        store_member=store_member, virtual=virtual, stats=shown,
        interaction_mall_ids=[str(m) for m in interaction_mall_ids or []],
        create_time=_ts(created_at), update_time=_ts(updated_at),
    )


def member_to_proto(c: Customer, *, tags: list[str] | None = None, stats: CustomerStats | None = None,
                    interaction_mall_ids: list[int] | None = None) -> pb.Member:
    """The Member of a mapped row (and its mapped stats row)."""
    return member_from_values(_member_values(c), None if stats is None else _stats_values(stats), tags=tags,
                              interaction_mall_ids=interaction_mall_ids)


def member_from_row(row: Sequence[Any], *, tags: list[str] | None = None,
                    interaction_mall_ids: list[int] | None = None) -> pb.Member:
    """The Member of a row that starts with ``MEMBER_COLUMNS`` and goes on with ``STATS_SHOWN`` (the view's select)."""
    return member_from_values(row[:_WIDTH], row[_WIDTH:_VIEW_WIDTH], tags=tags,
                              interaction_mall_ids=interaction_mall_ids)


_WIDTH = len(MEMBER_COLUMNS)
_VIEW_WIDTH = _WIDTH + len(STATS_SHOWN)
