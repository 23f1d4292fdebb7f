"""Rows to the Member message."""

from __future__ import annotations

from crowdpack.customer.v1 import member_pb2 as pb
from services.common.validation import enum_of, to_timestamp
from services.customer.models import Customer, CustomerStats


def member_to_proto(c: Customer, *, tags: list[str] | None = None, stats: CustomerStats | None = None,
                    interaction_mall_ids: list[int] | None = None) -> pb.Member:
    member = pb.Member(
        member_id=str(c.id), kind=enum_of(pb.CustomerKind, c.kind), phone=c.phone or "", email=c.email or "",
        name=c.name,
        real_name=c.real_name, gender=enum_of(pb.Gender, c.gender),
        birthday=c.birthday.isoformat() if c.birthday else "",
        avatar_url=c.avatar_url, wechat_openid=c.wechat_openid or "", wechat_unionid=c.wechat_unionid or "",
        douyin_id=c.douyin_id or "", alipay_id=c.alipay_id or "", xiaohongshu_id=c.xiaohongshu_id or "",
        registration_time=to_timestamp(c.registered_at),
        registration_mall_id=str(c.registration_mall_id or ""),
        card=pb.MemberCard(
            opened=c.card_opened, card_number=c.card_number or "", open_time=to_timestamp(c.card_open_time),
            open_mall_id=str(c.card_open_mall_id or ""), open_channel=enum_of(pb.OpenChannel, c.card_open_channel),
            promotion_channel=c.promotion_channel, open_scene=c.open_scene),
        level=c.level, level_frozen=c.level_frozen, level_expire_time=to_timestamp(c.level_expires_at),
        group_id=str(c.group_id or ""), tags=tags or [], disabled=c.disabled,
        review_status=enum_of(pb.ReviewStatus, c.review_status),
        store_member=c.store_member, virtual=c.virtual,
        interaction_mall_ids=[str(m) for m in interaction_mall_ids or []],
        create_time=to_timestamp(c.created_at), update_time=to_timestamp(c.updated_at),
    )
    if stats is not None:
        member.stats.CopyFrom(pb.MemberStats(
            points_balance=stats.points_balance, red_packet_balance_fen=stats.red_packet_balance_fen,
            stored_balance_fen=stats.stored_balance_fen, spend_count=stats.spend_count,
            spend_total_fen=stats.spend_total_fen, first_spend_time=to_timestamp(stats.first_spend_at),
            last_spend_time=to_timestamp(stats.last_spend_at), cumulative_spend_fen=stats.cumulative_spend_fen,
            online_count=stats.online_count, online_total_fen=stats.online_total_fen,
            online_last_time=to_timestamp(stats.online_last_at), offline_count=stats.offline_count,
            offline_total_fen=stats.offline_total_fen, offline_last_time=to_timestamp(stats.offline_last_at)))
    return member
