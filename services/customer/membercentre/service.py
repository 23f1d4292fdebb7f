"""Member sessions and the member centre's profile: the rules and the reads."""

from __future__ import annotations

from crowdpack.customer.v1 import member_centre_service_pb2 as pb
from crowdpack.customer.v1 import member_pb2
from services.common.auth import Caller, Role
from services.common.db import Database
from services.common.errors import InvalidArgument, NotFound, PermissionDenied
from services.common.identity import Signer
from services.common.validation import enum_of, to_timestamp
from services.customer.membercentre.repository import MemberCentreRepository
from services.customer.models import Customer
from services.customer.settings.repository import load as load_settings
from services.customer.validation import normalize_phone

MEMBER_TTL_S = 15 * 60
# Where each channel's user id is kept on the member, and the name its API key is configured under.
CHANNELS: dict[int, tuple[str, str]] = {
    pb.MEMBER_CHANNEL_WECHAT: ("wechat_openid", "wechat"), pb.MEMBER_CHANNEL_ALIPAY: ("alipay_id", "alipay"),
    pb.MEMBER_CHANNEL_DOUYIN: ("douyin_id", "douyin")}


def channel_caller_name(channel: int) -> str:
    return f"channel:{CHANNELS[channel][1]}"


class MemberCentre:
    def __init__(self, db: Database, access_signer: Signer) -> None:
        self.db = db
        self.signer = access_signer

    async def create_session(self, caller: Caller, channel: int, channel_user_id: str,
                             phone: str) -> tuple[str, str]:
        if channel not in CHANNELS:
            raise InvalidArgument("must be MEMBER_CHANNEL_WECHAT, _ALIPAY or _DOUYIN", field="channel")
        if caller.role != Role.CHANNEL or caller.staff_id != channel_caller_name(channel):
            raise PermissionDenied("this API key is not the channel's", field="channel")
        user_id = channel_user_id.strip()
        if not user_id or len(user_id) > 64:
            raise InvalidArgument("is required (at most 64 characters)", field="channel_user_id")
        number = normalize_phone(phone) if phone else None
        column = getattr(Customer, CHANNELS[channel][0])
        async with self.db.read() as session:
            repo = MemberCentreRepository(session)
            member = await repo.by_channel(column, user_id)
            if member is None and number is not None:
                member = await repo.by_phone(number)
        if member is None:
            raise NotFound("no member has this channel user id or phone: register the member first",
                           field="channel_user_id")
        if member.disabled:
            raise PermissionDenied("this member is disabled", field="channel_user_id")
        token = self.signer.sign(Caller(staff_id=str(member.id), role=Role.MEMBER), ttl_s=MEMBER_TTL_S)
        return token, str(member.id)

    async def profile(self, caller: Caller, member_id: str) -> pb.MemberProfile:
        if not member_id.isdigit() or len(member_id) > 18:
            raise InvalidArgument("must be a member id", field="member_id")
        async with self.db.read() as session:
            repo = MemberCentreRepository(session)
            member = await repo.member(int(member_id))
            if member is None:
                raise NotFound(f"no member {member_id}", field="member_id")
            if not await repo.visible(member.id, caller):
                raise PermissionDenied(f"member {member_id} is not yours to see", field="member_id")
            settings = await load_settings(session)
            level_name = await repo.level_name(member.level) if settings.show_level and member.level else ""
        profile = pb.MemberProfile(
            user_id=str(member.id) if settings.show_user_id else "", name=member.name, avatar_url=member.avatar_url,
            level=member.level if settings.show_level else 0, level_name=level_name,
            card=member_pb2.MemberCard(opened=member.card_opened, card_number=member.card_number or "",
                                       open_time=to_timestamp(member.card_open_time),
                                       open_mall_id=str(member.card_open_mall_id or ""),
                                       open_channel=enum_of(member_pb2.OpenChannel, member.card_open_channel)),
            review_status=enum_of(member_pb2.ReviewStatus, member.review_status), disabled=member.disabled)
        return profile
