"""The customer service's CSV downloads in the shared format (``services/common/downloads.py``): the
Chinese words of its values, and each mall's time zone for the times."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_pb2
from services.common.downloads import DEFAULT_ZONE, zone_of
from services.customer.organization.models import Mall

GENDER_TEXT: dict[int, str] = {member_pb2.GENDER_MALE: "男", member_pb2.GENDER_FEMALE: "女",
                               member_pb2.GENDER_UNKNOWN: "未知"}
REVIEW_TEXT: dict[int, str] = {member_pb2.REVIEW_STATUS_PENDING: "待审核", member_pb2.REVIEW_STATUS_APPROVED: "已通过",
                               member_pb2.REVIEW_STATUS_REJECTED: "已拒绝"}
CHANNEL_TEXT: dict[int, str] = {member_pb2.OPEN_CHANNEL_DOUYIN: "抖音", member_pb2.OPEN_CHANNEL_XIAOHONGSHU: "小红书",
                                member_pb2.OPEN_CHANNEL_WECHAT: "微信", member_pb2.OPEN_CHANNEL_ALIPAY: "支付宝",
                                member_pb2.OPEN_CHANNEL_IMPORT: "外部导入"}


def gender_text(gender: int) -> str:
    return GENDER_TEXT.get(gender, "未知")


class MallZones:
    """Every mall's time zone, read once per download (malls are few)."""

    def __init__(self, zones: dict[int, ZoneInfo]) -> None:
        self.zones = zones

    @classmethod
    async def read(cls, session: AsyncSession) -> MallZones:
        rows = await session.execute(select(Mall.id, Mall.timezone))
        return cls({mall_id: zone_of(name) for mall_id, name in rows})

    def of(self, mall_id: int | None) -> ZoneInfo:
        return self.zones.get(mall_id, DEFAULT_ZONE) if mall_id is not None else DEFAULT_ZONE
