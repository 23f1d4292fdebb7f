"""crowdpack.customer.v1.MemberService."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, caller_of
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import run_idempotent
from services.common.clock import utcnow
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import aware, bounded_text, known_enum, mask_paths, parse_int_id, to_timestamp
from services.customer import timeline
from services.customer.crowds.catalogue import translate
from services.customer.crowds.index import CrowdIndex
from services.customer.members import events
from services.customer.members.cards import card_number
from services.customer.members.convert import member_to_proto
from services.customer.members.repository import ORDER_KEYS, MemberRepository, among, check_filter, filter_clauses
from services.customer.members.statistics import member_statistics
from services.customer.business.models import Contact
from services.customer.classification.tagging import remove_all_tags
from services.customer.models import Customer, CustomerGroup, IdempotencyRecord, Mall, TimelineEntry
from services.customer.organization.repository import OrganizationRepository
from services.customer.scope import require_admin, visible_members
from services.customer.settings.repository import load as load_settings
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
            values[path] = bounded_text(raw, field, TEXT_FIELDS[path])
        elif path == "gender":
            values["gender"] = known_enum(member_pb2.Gender, raw, field) or member_pb2.GENDER_UNKNOWN
        elif path == "birthday":
            values["birthday"] = parse_birthday(raw, field)
        elif path == "avatar_url":
            values["avatar_url"] = url(raw, field)
        elif path in CHANNEL_IDS:
            values[path] = channel_id(raw, field)
        elif path == "group_id":
            values["group_id"] = parse_int_id(raw, field) if raw and raw != "default" else None
    return values


class MemberServicer(pb_grpc.MemberServiceServicer):
    def __init__(self, db: Database, index: CrowdIndex | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.index = index
        self.clock = clock

    async def _visible_member(self, session: AsyncSession, member_id: int, caller: Caller, field: str = "member_id",
                              *, lock: bool = False) -> Customer:
        repo = MemberRepository(session)
        member = await repo.get(member_id, lock=lock)
        if member is None:
            raise NotFound(f"no member {member_id}", field=field)
        if not await repo.visible(member_id, visible_members(caller)):
            raise PermissionDenied(f"member {member_id} is outside your malls")
        return member

    async def _view(self, session: AsyncSession, member: Customer) -> member_pb2.Member:
        repo = MemberRepository(session)
        return member_to_proto(member, tags=(await repo.tags_of([member.id])).get(member.id, []),
                               stats=(await repo.stats_of([member.id])).get(member.id),
                               interaction_mall_ids=(await repo.interactions_of([member.id])).get(member.id, []))

    async def _check_unique(self, repo: MemberRepository, values: dict[str, Any], member_id: int | None,
                            prefix: str = "") -> None:
        for column, field, what in ((Customer.phone, "phone", "phone"), (Customer.email, "email", "email"),
                                    (Customer.card_number, "card_number", "card number")):
            value = values.get(field)
            if value:
                owner = await repo.id_by(column, value)
                if owner is not None and owner != member_id:
                    raise AlreadyExists(f"a customer with this {what} exists", field=prefix + field)

    async def _check_refs(self, session: AsyncSession, values: dict[str, Any], prefix: str = "") -> None:
        if values.get("group_id") is not None and await session.get(CustomerGroup, values["group_id"]) is None:
            raise NotFound(f"no group {values['group_id']}", field=prefix + "group_id")
        mall = values.get("registration_mall_id")
        if mall is not None and await session.get(Mall, mall) is None:
            raise NotFound(f"no mall {mall}", field=prefix + "registration_mall_id")

    # --- create, read, update, delete

    async def CreateMember(self, request: pb.CreateMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.CreateMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "creating a member")
        values = profile_values(request, {"phone", "email", "name", "real_name", "gender", "birthday", "avatar_url",
                                          *CHANNEL_IDS})
        if values["phone"] is None and values["email"] is None:
            raise InvalidArgument("phone or email is required (at least one)", field="phone")
        values["registration_mall_id"] = parse_int_id(request.registration_mall_id, "registration_mall_id") \
            if request.registration_mall_id else None
        now = utcnow()
        registered = aware(request.registration_time.ToDatetime()) if request.HasField("registration_time") else now
        if registered > now:
            raise InvalidArgument("must not be in the future", field="registration_time")

        async def create(session: AsyncSession) -> pb.CreateMemberResponse:
            repo = MemberRepository(session)
            await self._check_unique(repo, values, None)
            await self._check_refs(session, values)
            settings = await load_settings(session)
            review = member_pb2.REVIEW_STATUS_PENDING if settings.review_required else member_pb2.REVIEW_STATUS_APPROVED
            store_member = bool(values["phone"]) and await OrganizationRepository(session).is_store_staff_phone(
                values["phone"])
            member = await repo.add(Customer(
                kind=member_pb2.CUSTOMER_KIND_MEMBER, registered_at=registered, card_opened=False,
                card_open_channel=0, promotion_channel="", open_scene="", level=0, level_frozen=False,
                disabled=False, review_status=review, store_member=store_member, virtual=request.virtual,
                created_at=now, updated_at=now, **values))
            timeline.record(session, member.id, "created", caller.staff_id)
            events.created(session, member)
            return pb.CreateMemberResponse(member=await self._view(session, member))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateMember", request, pb.CreateMemberResponse,
                                    create)

    async def GetMember(self, request: pb.GetMemberRequest, context: grpc.aio.ServicerContext) -> pb.GetMemberResponse:
        member_id = parse_int_id(request.member_id, "member_id")
        async with self.db.read() as session:
            member = await self._visible_member(session, member_id, caller_of(context))
            return pb.GetMemberResponse(member=await self._view(session, member))

    async def UpdateMember(self, request: pb.UpdateMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.UpdateMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "editing a member")
        member_id = parse_int_id(request.member_id, "member_id")
        paths = set(mask_paths(request.update_mask, UPDATABLE))
        values = profile_values(request.member, paths, "member.")

        async def update(session: AsyncSession) -> pb.UpdateMemberResponse:
            member = await self._visible_member(session, member_id, caller)
            repo = MemberRepository(session)
            await self._check_unique(repo, values, member_id, "member.")
            await self._check_refs(session, values, "member.")
            new_phone, new_email = values.get("phone", member.phone), values.get("email", member.email)
            if new_phone is None and new_email is None:
                raise InvalidArgument("a member keeps a phone or an email", field="member.phone")
            changed = {k: (getattr(member, k), v) for k, v in values.items() if getattr(member, k) != v}
            for key, (_, new) in changed.items():
                setattr(member, key, new)
            if changed:
                member.updated_at = utcnow()
                await session.flush()
                if "phone" in changed:
                    orgs = OrganizationRepository(session)
                    await orgs.refresh_store_member(member.phone)
                    member.store_member = bool(member.phone) and await orgs.is_store_staff_phone(member.phone)
                for key, (old, new) in changed.items():
                    timeline.record(session, member.id, "attribute_changed", caller.staff_id, field=key,
                                    **{"from": old, "to": new})
                events.updated(session, member, changed, caller.staff_id)
            return pb.UpdateMemberResponse(member=await self._view(session, member))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateMember", request, pb.UpdateMemberResponse,
                                    update)

    async def DeleteMember(self, request: pb.DeleteMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.DeleteMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "deleting a member")
        member_id = parse_int_id(request.member_id, "member_id")

        async def soft_delete(session: AsyncSession) -> pb.DeleteMemberResponse:
            member = await self._visible_member(session, member_id, caller)
            now = utcnow()
            await remove_all_tags(session, member_id, caller.staff_id, now)
            await session.execute(delete(Contact).where(Contact.customer_id == member_id))
            member.deleted_at = member.updated_at = now
            await session.flush()
            timeline.record(session, member_id, "deleted", caller.staff_id)
            events.status_changed(session, member)
            return pb.DeleteMemberResponse(member=member_to_proto(member))

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteMember", request, pb.DeleteMemberResponse,
                                    soft_delete)

    # --- card and status

    async def OpenCard(self, request: pb.OpenCardRequest, context: grpc.aio.ServicerContext) -> pb.OpenCardResponse:
        caller = caller_of(context)
        require_admin(caller, "opening a card")
        member_id = parse_int_id(request.member_id, "member_id")
        mall_id = parse_int_id(request.mall_id, "mall_id")
        channel = known_enum(member_pb2.OpenChannel, request.channel, "channel", allow_unspecified=False)
        promotion = bounded_text(request.promotion_channel, "promotion_channel", 100)
        scene = bounded_text(request.open_scene, "open_scene", 100)
        now = utcnow()
        opened_at = aware(request.open_time.ToDatetime()) if request.HasField("open_time") else now
        if opened_at > now:
            raise InvalidArgument("must not be in the future", field="open_time")

        async def open_card(session: AsyncSession) -> pb.OpenCardResponse:
            member = await self._visible_member(session, member_id, caller)
            if member.card_opened:
                raise FailedPrecondition(f"member {member_id} already has card {member.card_number}",
                                         field="member_id")
            if member.disabled:
                raise FailedPrecondition(f"member {member_id} is disabled", field="member_id")
            if await session.get(Mall, mall_id) is None:
                raise NotFound(f"no mall {mall_id}", field="mall_id")
            member.card_opened, member.card_number = True, card_number(member.id)
            member.card_open_time, member.card_open_mall_id, member.card_open_channel = opened_at, mall_id, channel
            member.promotion_channel, member.open_scene, member.updated_at = promotion, scene, now
            if member.registration_mall_id is None:
                member.registration_mall_id = mall_id
            await session.flush()
            if mall_id != member.registration_mall_id:
                await MemberRepository(session).add_interaction(member.id, mall_id, "bind_card", opened_at)
            timeline.record(session, member.id, "card_opened", caller.staff_id, card_number=member.card_number,
                            mall_id=mall_id, channel=member_pb2.OpenChannel.Name(channel))
            events.card_opened(session, member)
            return pb.OpenCardResponse(member=await self._view(session, member))

        return await run_idempotent(self.db, IdempotencyRecord, "OpenCard", request, pb.OpenCardResponse, open_card)

    async def SetMemberDisabled(self, request: pb.SetMemberDisabledRequest,
                                context: grpc.aio.ServicerContext) -> pb.SetMemberDisabledResponse:
        caller = caller_of(context)
        require_admin(caller, "disabling a member")
        member_id = parse_int_id(request.member_id, "member_id")
        reason = bounded_text(request.reason, "reason", 200)

        async def set_disabled(session: AsyncSession) -> pb.SetMemberDisabledResponse:
            member = await self._visible_member(session, member_id, caller)
            if member.disabled != request.disabled:
                member.disabled, member.updated_at = request.disabled, utcnow()
                await session.flush()
                timeline.record(session, member.id, "disabled" if request.disabled else "enabled", caller.staff_id,
                                reason=reason)
                events.status_changed(session, member)
            return pb.SetMemberDisabledResponse(member=await self._view(session, member))

        return await run_idempotent(self.db, IdempotencyRecord, "SetMemberDisabled", request,
                                    pb.SetMemberDisabledResponse, set_disabled)

    async def ReviewMember(self, request: pb.ReviewMemberRequest,
                           context: grpc.aio.ServicerContext) -> pb.ReviewMemberResponse:
        caller = caller_of(context)
        require_admin(caller, "reviewing a member")
        member_id = parse_int_id(request.member_id, "member_id")
        status = known_enum(member_pb2.ReviewStatus, request.review_status, "review_status", allow_unspecified=False)
        reason = bounded_text(request.reason, "reason", 200)

        async def review(session: AsyncSession) -> pb.ReviewMemberResponse:
            member = await self._visible_member(session, member_id, caller)
            if member.review_status != status:
                old = member.review_status
                member.review_status, member.updated_at = status, utcnow()
                await session.flush()
                timeline.record(session, member.id, "reviewed", caller.staff_id, reason=reason,
                                **{"from": member_pb2.ReviewStatus.Name(old),
                                   "to": member_pb2.ReviewStatus.Name(status)})
                events.status_changed(session, member)
            return pb.ReviewMemberResponse(member=await self._view(session, member))

        return await run_idempotent(self.db, IdempotencyRecord, "ReviewMember", request, pb.ReviewMemberResponse,
                                    review)

    # --- lists and answers

    async def ListMembers(self, request: pb.ListMembersRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListMembersResponse:
        caller = caller_of(context)
        limit = page_size(request.page_size)
        order_by = known_enum(pb.MemberOrderBy, request.order_by, "order_by")
        f = request.filter
        check_filter(f)
        after = self._cursor(request.page_token, order_by)
        where = [visible_members(caller), *filter_clauses(f)]
        if f.HasField("crowd"):
            where.append(await self._crowd_clause(f))
        async with self.db.read() as session:
            repo = MemberRepository(session)
            rows = await repo.page(where=where, order_by=order_by, ascending=request.ascending, limit=limit + 1,
                                   after=after)
            page = rows[:limit]
            ids = [m.id for m in page]
            tags, stats, malls = await repo.tags_of(ids), await repo.stats_of(ids), await repo.interactions_of(ids)
            token = ""
            if len(rows) > limit:
                last = page[-1]
                value = await repo.sort_value(last.id, order_by)
                token = encode_token({"o": order_by, "v": value.isoformat() if isinstance(value, datetime) else value,
                                      "id": last.id})
            total = await repo.count(where) if request.include_total else 0
        return pb.ListMembersResponse(
            members=[member_to_proto(m, tags=tags.get(m.id, []), stats=stats.get(m.id),
                                     interaction_mall_ids=malls.get(m.id, [])) for m in page],
            next_page_token=token, total_size=total)

    async def _crowd_clause(self, f: pb.MemberFilter) -> ColumnElement[bool]:
        """The ad hoc crowd filter: evaluated by the segment engine, then joined to the SQL filters."""
        if self.index is None:
            raise FailedPrecondition("the crowd index is not loaded in this process", field="filter.crowd")
        mall_id = parse_int_id(f.crowd_mall_id, "filter.crowd_mall_id")
        async with self.db.read() as session:
            if await session.get(Mall, mall_id) is None:
                raise NotFound(f"no mall {mall_id}", field="filter.crowd_mall_id")
            translation = await translate(session, mall_id, f.crowd, self.clock(), "filter.crowd")
        ids = (await self.index.evaluate(translation)).to_numpy().tolist()
        return among(ids, self.db.dialect)

    @staticmethod
    def _cursor(token: str, order_by: int) -> tuple[Any, int] | None:
        cursor = decode_token(token)
        if cursor is None:
            return None
        if cursor.get("o") != order_by or not isinstance(cursor.get("id"), int):
            raise InvalidArgument("is not a token this list returned (for this order)", field="page_token")
        value = cursor.get("v")
        if order_by == pb.MEMBER_ORDER_BY_LAST_SPEND_TIME:
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise InvalidArgument("is not a token this list returned", field="page_token") from None
        elif ORDER_KEYS[order_by] is not None and not isinstance(value, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        return value, cursor["id"]

    async def CheckOrderEligibility(self, request: pb.CheckOrderEligibilityRequest,
                                    context: grpc.aio.ServicerContext) -> pb.CheckOrderEligibilityResponse:
        member_id = parse_int_id(request.member_id, "member_id")
        async with self.db.read() as session:
            member = await MemberRepository(session).get_any(member_id)
            if member is None:
                raise NotFound(f"no member {member_id}", field="member_id")
            settings = await load_settings(session)
        checks = [
            (member.deleted_at is not None, pb.INELIGIBLE_REASON_DELETED, "the member was deleted"),
            (member.virtual, pb.INELIGIBLE_REASON_VIRTUAL, "virtual customers do not order"),
            (member.disabled, pb.INELIGIBLE_REASON_DISABLED, "the member's card is disabled"),
            (member.review_status == member_pb2.REVIEW_STATUS_PENDING, pb.INELIGIBLE_REASON_REVIEW_PENDING,
             "the member is under review"),
            (member.review_status == member_pb2.REVIEW_STATUS_REJECTED, pb.INELIGIBLE_REASON_REVIEW_REJECTED,
             "the member's review was rejected"),
            (member.level == 0 and not settings.base_level_may_order, pb.INELIGIBLE_REASON_BASE_LEVEL,
             "members at the base level may not order"),
        ]
        for failed, reason, message in checks:
            if failed:
                return pb.CheckOrderEligibilityResponse(eligible=False, reason=reason, message=message)
        return pb.CheckOrderEligibilityResponse(eligible=True, message="may order")

    async def ListTimeline(self, request: pb.ListTimelineRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListTimelineResponse:
        customer_id = parse_int_id(request.customer_id, "customer_id")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        before = cursor.get("before") if cursor else None
        if cursor is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        caller = caller_of(context)
        async with self.db.read() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                raise NotFound(f"no customer {customer_id}", field="customer_id")
            if customer.kind == member_pb2.CUSTOMER_KIND_MEMBER and \
                    not await MemberRepository(session).visible(customer_id, visible_members(caller)):
                raise PermissionDenied(f"customer {customer_id} is outside your malls")
            query = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id) \
                .order_by(TimelineEntry.id.desc()).limit(limit + 1)
            if before is not None:
                query = query.where(TimelineEntry.id < before)
            rows = (await session.scalars(query)).all()
        page = rows[:limit]
        token = encode_token({"before": page[-1].id}) if len(rows) > limit else ""
        return pb.ListTimelineResponse(entries=[member_pb2.TimelineEntry(
            entry_id=str(e.id), customer_id=str(e.customer_id), kind=e.kind, detail_json=e.detail,
            actor_id=e.actor_id, create_time=to_timestamp(e.created_at)) for e in page], next_page_token=token)

    async def GetMemberStatistics(self, request: pb.GetMemberStatisticsRequest,
                                  context: grpc.aio.ServicerContext) -> pb.GetMemberStatisticsResponse:
        caller = caller_of(context)
        async with self.db.read() as session:
            stats = await member_statistics(session, visible_members(caller), utcnow())
        return pb.GetMemberStatisticsResponse(statistics=stats)

