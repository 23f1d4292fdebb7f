"""The member download: the members a MemberFilter selects (as ListMembers does) as a CSV file.

The shared download format (``services/common/downloads.py``): Chinese headers, 男/女/未知, 是/否, times
in the member's registration mall's time zone. Columns the import knows use its Chinese header names
(手机号, 姓名, 性别, 注册时间, 会员卡号, ...), so a download can be edited and imported again (the other
columns are ignored by the import).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_service_pb2 as mpb
from services.common.auth import Caller
from services.common.chunks import IN_LIST, chunks
from services.common.downloads import csv_download, local_time, yes_no
from services.customer.exports import CHANNEL_TEXT, REVIEW_TEXT, MallZones, gender_text
from services.customer.members.repository import MemberRepository, filter_clauses
from services.customer.models import Customer
from services.customer.scope import visible_members

HEADER = ["会员编号", "手机号", "邮箱", "姓名", "真实姓名", "性别", "生日", "微信openid", "微信unionid", "注册商场",
          "注册时间", "会员卡号", "开卡时间", "开卡商场", "开卡渠道", "等级", "标签", "已禁用", "审核状态", "门店成员",
          "积分余额", "消费次数", "消费总额(分)", "最近消费时间", "创建时间"]


async def export_members(session: AsyncSession, caller: Caller, f: mpb.MemberFilter, order_by: int, ascending: bool,
                         cap: int, crowd: ColumnElement[bool] | None = None) -> tuple[bytes, int, bool]:
    """CSV bytes (the shared download format), rows written, and whether more members matched than ``cap``.

    ``crowd``: the clause selecting the members the filter's crowd holds, if it has one."""
    repo = MemberRepository(session)
    where = [visible_members(caller), *filter_clauses(f)]
    if crowd is not None:
        where.append(crowd)
    members: Sequence[Customer] = await repo.page(where=where,
                                                  order_by=order_by, ascending=ascending, limit=cap + 1, after=None)
    truncated = len(members) > cap
    members = members[:cap]
    tags: dict[int, list[str]] = {}
    stats = {}
    ids = [m.id for m in members]
    for chunk in chunks(ids, IN_LIST):
        tags.update(await repo.tags_of(chunk))
        stats.update(await repo.stats_of(chunk))
    zones = await MallZones.read(session)
    rows = []
    for m in members:
        s = stats.get(m.id)
        zone = zones.of(m.registration_mall_id)
        rows.append([
            m.id, m.phone, m.email, m.name, m.real_name, gender_text(m.gender),
            m.birthday.isoformat() if m.birthday else "", m.wechat_openid, m.wechat_unionid, m.registration_mall_id,
            local_time(m.registered_at, zone), m.card_number, local_time(m.card_open_time, zone), m.card_open_mall_id,
            CHANNEL_TEXT.get(m.card_open_channel, "") if m.card_opened else "", m.level,
            "|".join(tags.get(m.id, [])), yes_no(m.disabled), REVIEW_TEXT.get(m.review_status, ""),
            yes_no(m.store_member), s.points_balance if s else 0, s.spend_count if s else 0,
            s.spend_total_fen if s else 0, local_time(s.last_spend_at, zone) if s else "",
            local_time(m.created_at, zone)])
    return csv_download(HEADER, rows), len(rows), truncated
