"""Groups and tags: the domain operations of ClassificationService, each in its own transaction.

Which customers a caller may classify is the ``scope`` the service is built with (members as the
member scope says, business customers as ownership says; the customer service wires it).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import ColumnElement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import classification_service_pb2 as pb
from services.common.auth import Caller
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from services.common.idempotency import idempotent
from services.common.pagination import Page, keyset_page
from services.customer import member_events, timeline
from services.customer.classification import tagging
from services.customer.classification.convert import DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME, group_to_proto, tag_to_proto
from services.customer.classification.models import CustomerGroup, Tag
from services.customer.classification.repository import ClassificationRepository
from services.customer.feature import FeatureService

Scope = Callable[[Caller], ColumnElement[bool]]


async def _tags(repo: ClassificationRepository, ids: list[int]) -> list[Tag]:
    found = await repo.tags_by_id(ids)
    for tag_id in ids:
        if tag_id not in found:
            raise NotFound(f"no tag {tag_id}", field="tag_ids")
    return [found[t] for t in ids]


async def _group(repo: ClassificationRepository, group_id: int | None, field: str = "group_id") -> CustomerGroup:
    if group_id is None:
        raise FailedPrecondition("the default group cannot be changed", field=field)
    group = await repo.group(group_id)
    if group is None:
        raise NotFound(f"no group {group_id}", field=field)
    return group


async def _unique_group_name(repo: ClassificationRepository, name: str, group_id: int | None = None) -> None:
    taken = await repo.group_named(name)
    if name.lower() == DEFAULT_GROUP_NAME.lower() or (taken is not None and taken.id != group_id):
        raise AlreadyExists(f"a group named {name!r} exists", field="name")


class ClassificationService(FeatureService):
    def __init__(self, db: Database, scope: Scope, clock: Clock = utcnow) -> None:
        super().__init__(db, clock)
        self.scope = scope

    async def _customers(self, session: AsyncSession, caller: Caller, ids: list[int]) -> list[int]:
        """``ids`` if every one names a live customer in the caller's scope."""
        repo = ClassificationRepository(session)
        live = await repo.live_ids(ids)
        for customer_id in ids:
            if customer_id not in live:
                raise NotFound(f"no customer {customer_id}", field="customer_ids")
        visible = await repo.visible_ids(ids, self.scope(caller))
        for customer_id in ids:
            if customer_id not in visible:
                raise PermissionDenied(f"customer {customer_id} is outside your scope", field="customer_ids")
        return ids

    # --- groups

    async def groups(self, caller: Caller, limit: int,
                     after: int | None) -> tuple[Page[CustomerGroup | None], dict[int | None, int]]:
        """A page of groups (None: the default group, position 0, before every group id) and their counts."""
        scope = self.scope(caller)
        async with self.db.read() as session:
            repo = ClassificationRepository(session)
            with_default = after is None

            async def fetch(n: int) -> list[CustomerGroup | None]:
                return [*([None] if with_default else []), *await repo.groups(n - with_default, after or 0)]

            page = await keyset_page(fetch, limit)
            return page, await repo.group_counts([g.id if g else None for g in page.items], scope)

    @idempotent("CreateCustomerGroup")
    async def create_group(self, session: AsyncSession, request: pb.CreateCustomerGroupRequest,
                           name: str) -> pb.CreateCustomerGroupResponse:
        repo = ClassificationRepository(session)
        await _unique_group_name(repo, name)
        try:
            group = await repo.add_group(CustomerGroup(name=name, created_at=self.clock()))
        except IntegrityError:  # a concurrent twin took the name first
            raise AlreadyExists(f"a group named {name!r} exists", field="name") from None
        return pb.CreateCustomerGroupResponse(group=group_to_proto(group))

    @idempotent("RenameCustomerGroup")
    async def rename_group(self, session: AsyncSession, request: pb.RenameCustomerGroupRequest, caller: Caller,
                           group_id: int | None, name: str) -> pb.RenameCustomerGroupResponse:
        repo = ClassificationRepository(session)
        group = await _group(repo, group_id)
        await _unique_group_name(repo, name, group.id)
        group.name = name
        await session.flush()
        counts = await repo.group_counts([group.id], self.scope(caller))
        return pb.RenameCustomerGroupResponse(group=group_to_proto(group, counts.get(group.id, 0)))

    @idempotent("DeleteCustomerGroup")
    async def delete_group(self, session: AsyncSession, request: pb.DeleteCustomerGroupRequest, caller: Caller,
                           group_id: int | None) -> pb.DeleteCustomerGroupResponse:
        repo = ClassificationRepository(session)
        group = await _group(repo, group_id)
        moved = await repo.customers_in_group(group.id)
        if moved:
            await repo.set_group(moved, None)
            for customer_id in moved:
                timeline.record(session, customer_id, "attribute_changed", caller.staff_id, field="group_id",
                                **{"from": str(group.id), "to": DEFAULT_GROUP_ID})
                member_events.fields_changed(session, customer_id, ["group_id"], caller.staff_id)
        await repo.delete(group)
        return pb.DeleteCustomerGroupResponse(moved_count=len(moved))

    @idempotent("MoveCustomersToGroup")
    async def move_to_group(self, session: AsyncSession, request: pb.MoveCustomersToGroupRequest, caller: Caller,
                            customer_ids: list[int], group_id: int | None) -> pb.MoveCustomersToGroupResponse:
        repo = ClassificationRepository(session)
        if group_id is not None:
            await _group(repo, group_id)
        await self._customers(session, caller, customer_ids)
        current = await repo.groups_of(customer_ids)
        moving = [c for c in customer_ids if current[c] != group_id]
        if moving:
            await repo.set_group(moving, group_id)
            for customer_id in moving:
                old = current[customer_id]
                timeline.record(session, customer_id, "attribute_changed", caller.staff_id, field="group_id",
                                **{"from": DEFAULT_GROUP_ID if old is None else str(old),
                                   "to": DEFAULT_GROUP_ID if group_id is None else str(group_id)})
                member_events.fields_changed(session, customer_id, ["group_id"], caller.staff_id)
        return pb.MoveCustomersToGroupResponse(moved_count=len(moving))

    # --- tags

    async def tags(self, caller: Caller, limit: int,
                   after: tuple[bool, int] | None) -> tuple[Page[Tag], dict[int, int]]:
        """A page of tags (predefined first) and how many customers in the caller's scope carry each."""
        scope = self.scope(caller)
        async with self.db.read() as session:
            repo = ClassificationRepository(session)
            page = await keyset_page(lambda n: repo.tags(n, after), limit)
            return page, await repo.tag_counts([t.id for t in page.items], scope)

    @idempotent("CreateTag")
    async def create_tag(self, session: AsyncSession, request: pb.CreateTagRequest, name: str) -> pb.CreateTagResponse:
        repo = ClassificationRepository(session)
        if await repo.tag_named(name) is not None:
            raise AlreadyExists(f"a tag named {name!r} exists", field="name")
        try:
            tag = await repo.add_tag(Tag(name=name, predefined=False, created_at=self.clock()))
        except IntegrityError:  # a concurrent twin took the name first
            raise AlreadyExists(f"a tag named {name!r} exists", field="name") from None
        return pb.CreateTagResponse(tag=tag_to_proto(tag))

    @idempotent("DeleteTag")
    async def delete_tag(self, session: AsyncSession, request: pb.DeleteTagRequest, caller: Caller,
                         tag_id: int) -> pb.DeleteTagResponse:
        repo = ClassificationRepository(session)
        tag = await repo.tag(tag_id)
        if tag is None:
            raise NotFound(f"no tag {tag_id}", field="tag_id")
        if tag.predefined:
            raise FailedPrecondition(f"{tag.name!r} is a predefined tag and cannot be deleted", field="tag_id")
        untagged = await tagging.remove_tag_everywhere(session, tag, caller.staff_id, self.clock())
        await repo.delete(tag)
        return pb.DeleteTagResponse(untagged_count=untagged)

    @idempotent("TagCustomers")
    async def tag_customers(self, session: AsyncSession, request: pb.TagCustomersRequest, caller: Caller,
                            customer_ids: list[int], tag_ids: list[int]) -> pb.TagCustomersResponse:
        tags = await _tags(ClassificationRepository(session), tag_ids)
        await self._customers(session, caller, customer_ids)
        added = await tagging.add_tags(session, customer_ids, tags, caller.staff_id, self.clock())
        return pb.TagCustomersResponse(added_count=added)

    @idempotent("UntagCustomers")
    async def untag_customers(self, session: AsyncSession, request: pb.UntagCustomersRequest, caller: Caller,
                              customer_ids: list[int], tag_ids: list[int]) -> pb.UntagCustomersResponse:
        tags = await _tags(ClassificationRepository(session), tag_ids)
        await self._customers(session, caller, customer_ids)
        removed = await tagging.remove_tags(session, customer_ids, tags, caller.staff_id, self.clock())
        return pb.UntagCustomersResponse(removed_count=removed)

    async def customer_tags(self, caller: Caller, customer_id: int, limit: int, after: int | None) -> Page[Tag]:
        scope = self.scope(caller)
        async with self.db.read() as session:
            repo = ClassificationRepository(session)
            if await repo.live_customer(customer_id) is None:
                raise NotFound(f"no customer {customer_id}", field="customer_id")
            if not await repo.visible_ids([customer_id], scope):
                raise PermissionDenied(f"customer {customer_id} is outside your scope", field="customer_id")
            return await keyset_page(lambda n: repo.customer_tags(customer_id, n, after), limit)
