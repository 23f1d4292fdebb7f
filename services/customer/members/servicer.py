"""crowdpack.customer.v1.MemberService."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.pagination import before_id, decode_token, page_size
from services.common.validation import (
    aware,
    bounded_text,
    known_enum,
    mask_paths,
    name_text,
    optional_id,
    parse_int_id,
    to_timestamp,
)
from services.customer.members.convert import member_from_row
from services.customer.members.repository import ORDER_KEYS, TIME_ORDERS, check_filter
from services.customer.members.service import CardOpening, CrowdMembers, MemberService
from services.customer.scope import require_admin, require_super_admin
from services.customer.validation import normalize_email, normalize_phone, parse_birthday, url

# Profile fields UpdateMember may change, and how each is validated.
TEXT_FIELDS = {"name": 100, "real_name": 100}
CHANNEL_IDS = ("wechat_openid", "wechat_unionid", "douyin_id", "alipay_id", "xiaohongshu_id")
UPDATABLE = {"phone", "email", "gender", "birthday", "avatar_url", "group_id", *TEXT_FIELDS, *CHANNEL_IDS}


def channel_id(value: str, field: str) -> str | None:
    """Channel ids are case-sensitive and kept exactly as given."""
    value = value.strip()
    if len(value) > 64:
        raise InvalidArgument("must be at most 64 characters", field=field)
    return value or None


def profile_values(source: Any, paths: set[str], prefix: str = "") -> dict[str, Any]:
    """Validated column values for the named profile fields of a request or Member message."""
    values: dict[str, Any] = {}
    for path in paths:
        field = prefix + path
        raw = getattr(source, path)
        if path == "phone":
            values["phone"] = normalize_phone(raw, field)
        elif path == "email":
            values["email"] = normalize_email(raw, field)
        elif path in TEXT_FIELDS:
            values[path] = name_text(raw, field, TEXT_FIELDS[path])
        elif path == "gender":
            values["gender"] = known_enum(member_pb2.Gender, raw, field) or member_pb2.GENDER_UNKNOWN
        elif path == "birthday":
            values["birthday"] = parse_birthday(raw, field)
        elif path == "avatar_url":
            values["avatar_url"] = url(raw, field)
        elif path in CHANNEL_IDS:
            values[path] = channel_id(raw, field)
        elif path == "group_id":
            values["group_id"] = optional_id(raw, field) if raw != "default" else None
    return values


class MemberServicer(pb_grpc.MemberServiceServicer):
    def __init__(self, db: Database, crowds: CrowdMembers | None = None, clock: Clock = utcnow) -> None:
        self.service = MemberService(db, crowds, clock)
        self.clock = clock

    # --- create, read, update, delete

    async def CreateMember(self, request: pb.CreateMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.CreateMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "creating a member")
        values = profile_values(request, {"phone", "email", "name", "real_name", "gender", "birthday", "avatar_url",
                                          *CHANNEL_IDS})
        if values["phone"] is None and values["email"] is None:
            raise InvalidArgument("phone or email is required (at least one)", field="phone")
        values["registration_mall_id"] = optional_id(request.registration_mall_id, "registration_mall_id")
        now = self.clock()
        registered = aware(request.registration_time.ToDatetime()) if request.HasField("registration_time") else now
        if registered > now:
            raise InvalidArgument("must not be in the future", field="registration_time")
        return await self.service.create(request, caller, values, registered, now)

    async def GetMember(self, request: pb.GetMemberRequest, context: grpc.aio.ServicerContext) -> pb.GetMemberResponse:
        member_id = parse_int_id(request.member_id, "member_id")
        return pb.GetMemberResponse(member=await self.service.get(member_id, caller_of(context)))

    async def UpdateMember(self, request: pb.UpdateMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.UpdateMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "editing a member")
        member_id = parse_int_id(request.member_id, "member_id")
        paths = set(mask_paths(request.update_mask, UPDATABLE))
        values = profile_values(request.member, paths, "member.")
        return await self.service.update(request, caller, member_id, values)

    async def DeleteMember(self, request: pb.DeleteMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.DeleteMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "deleting a member")
        return await self.service.delete(request, caller, parse_int_id(request.member_id, "member_id"))

    async def ReleaseDeletedContacts(self, request: pb.ReleaseDeletedContactsRequest,
                                     context: grpc.aio.ServicerContext) -> pb.ReleaseDeletedContactsResponse:
        caller = caller_of(context)
        require_super_admin(caller, "releasing a deleted customer's phone and email")
        return await self.service.release_contacts(request, caller, parse_int_id(request.member_id, "member_id"))

    # --- card and status

    async def OpenCard(self, request: pb.OpenCardRequest, context: grpc.aio.ServicerContext) -> pb.OpenCardResponse:
        caller = caller_of(context)
        require_admin(caller, "opening a card")
        member_id = parse_int_id(request.member_id, "member_id")
        mall_id = parse_int_id(request.mall_id, "mall_id")
        channel = known_enum(member_pb2.OpenChannel, request.channel, "channel", allow_unspecified=False)
        promotion = bounded_text(request.promotion_channel, "promotion_channel", 100)
        scene = bounded_text(request.open_scene, "open_scene", 100)
        now = self.clock()
        opened_at = aware(request.open_time.ToDatetime()) if request.HasField("open_time") else now
        if opened_at > now:
            raise InvalidArgument("must not be in the future", field="open_time")
        card = CardOpening(mall_id=mall_id, channel=channel, promotion_channel=promotion, open_scene=scene,
                           opened_at=opened_at)
        return await self.service.open_card(request, caller, member_id, card, now)

    async def SetMemberDisabled(self, request: pb.SetMemberDisabledRequest,
                                context: grpc.aio.ServicerContext) -> pb.SetMemberDisabledResponse:
        caller = caller_of(context)
        require_admin(caller, "disabling a member")
        member_id = parse_int_id(request.member_id, "member_id")
        reason = bounded_text(request.reason, "reason", 200)
        return await self.service.set_disabled(request, caller, member_id, reason)

    async def ReviewMember(self, request: pb.ReviewMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.ReviewMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "reviewing a member")
        member_id = parse_int_id(request.member_id, "member_id")
        status = known_enum(member_pb2.ReviewStatus, request.review_status, "review_status", allow_unspecified=False)
        reason = bounded_text(request.reason, "reason", 200)
        return await self.service.review(request, caller, member_id, status, reason)

    # --- lists and answers

    async def ListMembers(self, request: pb.ListMembersRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListMembersResponse:
        caller = caller_of(context)
        limit = page_size(request.page_size)
        order_by = known_enum(pb.MemberOrderBy, request.order_by, "order_by")
        f = request.filter
        check_filter(f)
        after = self._cursor(request.page_token, order_by)
        crowd_mall_id = parse_int_id(f.crowd_mall_id, "filter.crowd_mall_id") if f.HasField("crowd") else None
        found = await self.service.list(caller, f, crowd_mall_id, order_by=order_by, ascending=request.ascending,
                                        limit=limit, after=after, include_total=request.include_total)
        reply = pb.ListMembersResponse(next_page_token=found.next_page_token, total_size=found.total)
        for m in found.members:  # made in the reply's list, not copied into it
            member_from_row(m, tags=found.tags.get(m[0], []), interaction_mall_ids=found.malls.get(m[0], []),
                            into=reply.members)
        return reply

    @staticmethod
    def _cursor(token: str, order_by: int) -> tuple[Any, int] | None:
        cursor = decode_token(token)
        if cursor is None:
            return None
        if cursor.get("o") != order_by or not isinstance(cursor.get("id"), int):
            raise InvalidArgument("is not a token this list returned (for this order)", field="page_token")
        value = cursor.get("v")
        if order_by in TIME_ORDERS:
            if not isinstance(value, str):
                raise InvalidArgument("is not a token this list returned", field="page_token")
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise InvalidArgument("is not a token this list returned", field="page_token") from None
        elif ORDER_KEYS[order_by] is not None and not isinstance(value, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        return value, cursor["id"]

    async def CheckOrderEligibility(self, request: pb.CheckOrderEligibilityRequest,
                                    context: grpc.aio.ServicerContext) -> pb.CheckOrderEligibilityResponse:
        return await self.service.eligibility(parse_int_id(request.member_id, "member_id"))

    async def ListTimeline(self, request: pb.ListTimelineRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListTimelineResponse:
        customer_id = parse_int_id(request.customer_id, "customer_id")
        limit = page_size(request.page_size)
        before = before_id(request.page_token)
        page = await self.service.timeline(caller_of(context), customer_id, limit, before)
        return pb.ListTimelineResponse(entries=[member_pb2.TimelineEntry(
            entry_id=str(e.id), customer_id=str(e.customer_id), kind=e.kind, detail_json=e.detail,
            actor_id=e.actor_id, create_time=to_timestamp(e.created_at)) for e in page.items],
            next_page_token=page.next_token(lambda e: {"before": e.id}))

    async def GetMemberStatistics(self, request: pb.GetMemberStatisticsRequest,
                                  context: grpc.aio.ServicerContext) -> pb.GetMemberStatisticsResponse:
        return pb.GetMemberStatisticsResponse(statistics=await self.service.statistics(caller_of(context)))
