"""Members: the domain operations of MemberService, each in its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as pb
from services.common.auth import Caller
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import idempotent
from services.common.pagination import Page, encode_token, keyset_page, page_of
from services.customer import member_events, timeline
from services.customer.classification.tagging import remove_all_tags
from services.customer.contacts_held import held_error
from services.customer.feature import FeatureService
from services.customer.member_changes import change_attributes
from services.customer.members.cards import card_number
from services.customer.members.convert import member_from_row, member_to_proto
from services.customer.members.repository import (
    MemberReads,
    MemberRepository,
    among,
    filter_clauses,
    view_sort_value,
)
from services.customer.members.statistics import member_statistics
from services.customer.models import Customer, TimelineEntry
from services.customer.scope import visible_members
from services.customer.settings.repository import load as load_settings
from services.customer.store_members import is_store_staff_phone


class CrowdMembers(Protocol):
    """Evaluates a crowd given inline (the crowd service's ``AdHocCrowds``)."""

    async def member_ids(self, mall_id: int, definition: Any, *, mall_field: str, field: str) -> list[int]: ...


@dataclass(frozen=True)
class CardOpening:
    """The parsed fields of an OpenCard."""

    mall_id: int
    channel: int
    promotion_channel: str
    open_scene: str
    opened_at: datetime


@dataclass(frozen=True)
class MemberList:
    """A page of members (each a row of ``VIEW_COLUMNS``: the member and their stats) with their tags and malls,
    the next page's token and (if asked) the total."""

    members: Sequence[Sequence[Any]]
    tags: dict[int, list[str]]
    malls: dict[int, list[int]]
    next_page_token: str
    total: int


async def _visible_member(session: AsyncSession, member_id: int, caller: Caller, field: str = "member_id",
                          *, lock: bool = False) -> Customer:
    repo = MemberRepository(session)
    member = await repo.get(member_id, lock=lock)
    if member is None:
        raise NotFound(f"no member {member_id}", field=field)
    if not await repo.visible(member_id, visible_members(caller)):
        raise PermissionDenied(f"member {member_id} is outside your malls", error_reason="MEMBER_OUTSIDE_SCOPE")
    return member


async def _view(session: AsyncSession, member: Customer) -> member_pb2.Member:
    repo = MemberRepository(session)
    return member_to_proto(member, tags=(await repo.tags_of([member.id])).get(member.id, []),
                           stats=(await repo.stats_of([member.id])).get(member.id),
                           interaction_mall_ids=(await repo.interactions_of([member.id])).get(member.id, []))


def _read_view(reads: MemberReads, member_id: int, scope: ColumnElement[bool]) -> member_pb2.Member:
    """GetMember's view: the member with their stats, tags and malls, if ``scope`` holds them."""
    found = reads.member(member_id, scope)
    if found is None:
        raise NotFound(f"no member {member_id}", field="member_id")
    row, visible = found
    if not visible:
        raise PermissionDenied(f"member {member_id} is outside your malls", error_reason="MEMBER_OUTSIDE_SCOPE")
    tags, malls = reads.tags_and_malls_of([member_id])
    return member_from_row(row, tags=tags.get(member_id, []), interaction_mall_ids=malls.get(member_id, []))


async def _check_unique(repo: MemberRepository, values: dict[str, Any], member_id: int | None,
                        prefix: str = "") -> None:
    for column, field, what in ((Customer.phone, "phone", "phone"), (Customer.email, "email", "email"),
                                (Customer.card_number, "card_number", "card number")):
        value = values.get(field)
        if value:
            held = await repo.holder_by(column, value)
            if held is None or held[0] == member_id:
                continue
            owner, deleted = held
            raise held_error(what, field, owner, deleted, prefix)


async def _check_refs(repo: MemberRepository, values: dict[str, Any], prefix: str = "") -> None:
    if values.get("group_id") is not None and not await repo.group_exists(values["group_id"]):
        raise NotFound(f"no group {values['group_id']}", field=prefix + "group_id")
    mall = values.get("registration_mall_id")
    if mall is not None and not await repo.mall_exists(mall):
        raise NotFound(f"no mall {mall}", field=prefix + "registration_mall_id")


class MemberService(FeatureService):
    def __init__(self, db: Database, crowds: CrowdMembers | None = None, clock: Clock = utcnow) -> None:
        super().__init__(db, clock)
        self.crowds = crowds

    # --- create, read, update, delete

    @idempotent("CreateMember")
    async def create(self, session: AsyncSession, request: pb.CreateMemberRequest, caller: Caller,
                     values: dict[str, Any], registered: datetime, now: datetime) -> pb.CreateMemberResponse:
        repo = MemberRepository(session)
        await _check_unique(repo, values, None)
        await _check_refs(repo, values)
        settings = await load_settings(session)
        review = member_pb2.REVIEW_STATUS_PENDING if settings.review_required else member_pb2.REVIEW_STATUS_APPROVED
        store_member = bool(values["phone"]) and await is_store_staff_phone(session, values["phone"])
        member = await repo.add(Customer(
            kind=member_pb2.CUSTOMER_KIND_MEMBER, registered_at=registered, card_opened=False,
            card_open_channel=0, promotion_channel="", open_scene="", level=0, level_frozen=False,
            disabled=False, review_status=review, store_member=store_member, virtual=request.virtual,
            created_at=now, updated_at=now, **values))
        timeline.record(session, member.id, "created", caller.staff_id)
        member_events.created(session, member)
        return pb.CreateMemberResponse(member=await _view(session, member))

    async def get(self, member_id: int, caller: Caller) -> member_pb2.Member:
        scope = visible_members(caller)
        return await self.db.run_core_read(lambda conn: _read_view(MemberReads(conn), member_id, scope))

    @idempotent("UpdateMember")
    async def update(self, session: AsyncSession, request: pb.UpdateMemberRequest, caller: Caller, member_id: int,
                     values: dict[str, Any]) -> pb.UpdateMemberResponse:
        member = await _visible_member(session, member_id, caller)
        repo = MemberRepository(session)
        await _check_unique(repo, values, member_id, "member.")
        await _check_refs(repo, values, "member.")
        new_phone, new_email = values.get("phone", member.phone), values.get("email", member.email)
        if new_phone is None and new_email is None:
            raise InvalidArgument("a member keeps a phone or an email", field="member.phone")
        await change_attributes(session, member, values, caller.staff_id, self.clock())
        return pb.UpdateMemberResponse(member=await _view(session, member))

    @idempotent("DeleteMember")
    async def delete(self, session: AsyncSession, request: pb.DeleteMemberRequest, caller: Caller,
                     member_id: int) -> pb.DeleteMemberResponse:
        member = await _visible_member(session, member_id, caller)
        now = self.clock()
        await remove_all_tags(session, member_id, caller.staff_id, now)
        await MemberRepository(session).delete_contacts(member_id)
        member.deleted_at = member.updated_at = now
        await session.flush()
        timeline.record(session, member_id, "deleted", caller.staff_id)
        member_events.status_changed(session, member)
        return pb.DeleteMemberResponse(member=member_to_proto(member))

    @idempotent("ReleaseDeletedContacts")
    async def release_contacts(self, session: AsyncSession, request: pb.ReleaseDeletedContactsRequest,
                               caller: Caller, customer_id: int) -> pb.ReleaseDeletedContactsResponse:
        """Frees a deleted customer's phone and email; the timeline keeps them, the record keeps the rest."""
        customer = await MemberRepository(session).customer_any(customer_id, lock=True)
        if customer is None:
            raise NotFound(f"no customer {customer_id}", field="member_id")
        if customer.deleted_at is None:
            raise FailedPrecondition(f"customer {customer_id} is not deleted; only a deleted customer's phone and "
                                     "email can be released", field="member_id", error_reason="CUSTOMER_NOT_DELETED")
        phone, email = customer.phone or "", customer.email or ""
        if phone or email:
            customer.phone, customer.email, customer.updated_at = None, None, self.clock()
            await session.flush()
            timeline.record(session, customer_id, "contacts_released", caller.staff_id, phone=phone, email=email)
        return pb.ReleaseDeletedContactsResponse(released_phone=phone, released_email=email)

    # --- card and status

    @idempotent("OpenCard")
    async def open_card(self, session: AsyncSession, request: pb.OpenCardRequest, caller: Caller, member_id: int,
                        card: CardOpening, now: datetime) -> pb.OpenCardResponse:
        member = await _visible_member(session, member_id, caller)
        if member.card_opened:
            raise FailedPrecondition(f"member {member_id} already has card {member.card_number}", field="member_id")
        if member.disabled:
            raise FailedPrecondition(f"member {member_id} is disabled", field="member_id")
        repo = MemberRepository(session)
        mall_id = card.mall_id
        if not await repo.mall_exists(mall_id):
            raise NotFound(f"no mall {mall_id}", field="mall_id")
        member.card_opened, member.card_number = True, card_number(member.id)
        member.card_open_time, member.card_open_mall_id, member.card_open_channel = card.opened_at, mall_id, \
            card.channel
        member.promotion_channel, member.open_scene, member.updated_at = card.promotion_channel, card.open_scene, now
        if member.registration_mall_id is None:
            member.registration_mall_id = mall_id
        await session.flush()
        if mall_id != member.registration_mall_id:
            await repo.add_interaction(member.id, mall_id, "bind_card", card.opened_at)
        timeline.record(session, member.id, "card_opened", caller.staff_id, card_number=member.card_number,
                        mall_id=mall_id, channel=member_pb2.OpenChannel.Name(card.channel))
        member_events.card_opened(session, member)
        return pb.OpenCardResponse(member=await _view(session, member))

    @idempotent("SetMemberDisabled")
    async def set_disabled(self, session: AsyncSession, request: pb.SetMemberDisabledRequest, caller: Caller,
                           member_id: int, reason: str) -> pb.SetMemberDisabledResponse:
        member = await _visible_member(session, member_id, caller)
        if member.disabled != request.disabled:
            member.disabled, member.updated_at = request.disabled, self.clock()
            await session.flush()
            timeline.record(session, member.id, "disabled" if request.disabled else "enabled", caller.staff_id,
                            reason=reason)
            member_events.status_changed(session, member)
        return pb.SetMemberDisabledResponse(member=await _view(session, member))

    @idempotent("ReviewMember")
    async def review(self, session: AsyncSession, request: pb.ReviewMemberRequest, caller: Caller, member_id: int,
                     status: int, reason: str) -> pb.ReviewMemberResponse:
        member = await _visible_member(session, member_id, caller)
        if member.review_status != status:
            old = member.review_status
            member.review_status, member.updated_at = status, self.clock()
            await session.flush()
            timeline.record(session, member.id, "reviewed", caller.staff_id, reason=reason,
                            **{"from": member_pb2.ReviewStatus.Name(old), "to": member_pb2.ReviewStatus.Name(status)})
            member_events.status_changed(session, member)
        return pb.ReviewMemberResponse(member=await _view(session, member))

    # --- lists and answers

    async def list(self, caller: Caller, f: pb.MemberFilter, crowd_mall_id: int | None, *, order_by: int,
                   ascending: bool, limit: int, after: tuple[Any, int] | None, include_total: bool) -> MemberList:
        """A page of the members ``caller`` sees that match the (validated) filter, in the order asked.

        The filter's crowd, if it has one, is read in ``crowd_mall_id``."""
        where = [visible_members(caller), *filter_clauses(f)]
        if crowd_mall_id is not None:
            where.append(await self._crowd_clause(f.crowd, crowd_mall_id))

        def read(conn: Connection) -> MemberList:
            reads = MemberReads(conn)
            page = page_of(reads.page(where=where, order_by=order_by, ascending=ascending, limit=limit + 1,
                                      after=after), limit)
            ids = [row[0] for row in page.items]
            tags, malls = reads.tags_and_malls_of(ids)
            token = ""
            if page.more:
                last = page.items[-1]
                value = view_sort_value(last, order_by)
                token = encode_token({"o": order_by, "v": value.isoformat() if isinstance(value, datetime) else value,
                                      "id": last[0]})
            total = reads.count(where) if include_total else 0
            return MemberList(page.items, tags, malls, token, total)

        return await self.db.run_core_read(read)

    async def _crowd_clause(self, crowd: Any, mall_id: int) -> ColumnElement[bool]:
        """The ad hoc crowd filter: evaluated by the segment engine, then joined to the SQL filters."""
        if self.crowds is None:
            raise FailedPrecondition("the crowd index is not loaded in this process", field="filter.crowd")
        ids = await self.crowds.member_ids(mall_id, crowd, mall_field="filter.crowd_mall_id", field="filter.crowd")
        return among(ids, self.db.dialect)

    async def eligibility(self, member_id: int) -> pb.CheckOrderEligibilityResponse:
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

    async def timeline(self, caller: Caller, customer_id: int, limit: int,
                       before: int | None) -> Page[TimelineEntry]:
        """A page of a customer's timeline, newest first (a member's only if ``caller`` sees them)."""
        async with self.db.read() as session:
            repo = MemberRepository(session)
            customer = await repo.customer(customer_id)
            if customer is None:
                raise NotFound(f"no customer {customer_id}", field="customer_id")
            if customer.kind == member_pb2.CUSTOMER_KIND_MEMBER and \
                    not await repo.visible(customer_id, visible_members(caller)):
                raise PermissionDenied(f"customer {customer_id} is outside your malls")
            return await keyset_page(lambda n: timeline.entries(session, customer_id, n, before), limit)

    async def statistics(self, caller: Caller) -> pb.MemberStatistics:
        async with self.db.read() as session:
            return await member_statistics(session, visible_members(caller), self.clock())
