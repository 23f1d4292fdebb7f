"""crowdpack.customer.v1.ClassificationService: groups and tags for every customer."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import classification_service_pb2 as pb
from crowdpack.customer.v1 import classification_service_pb2_grpc as pb_grpc
from services.common.auth import Caller, caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import run_idempotent
from services.common.pagination import decode_token, encode_token, page_size
from services.common.validation import bounded_text, parse_int_id
from services.customer import timeline
from services.customer import member_events
from services.customer.business.ownership import visible_customers
from services.customer.classification import tagging
from services.customer.classification.convert import DEFAULT_GROUP_ID, DEFAULT_GROUP_NAME, group_to_proto, tag_to_proto
from services.customer.classification.repository import ClassificationRepository
from services.customer.models import CustomerGroup, IdempotencyRecord, Tag
from services.customer.scope import require_admin

MAX_CUSTOMERS = 1000
MAX_TAGS = 20
NAME_LENGTH = 50


def parse_ids(values: Sequence[str], field: str, maximum: int) -> list[int]:
    """Numeric ids, repeats dropped, order kept; at least one, at most ``maximum``."""
    if not values:
        raise InvalidArgument("name at least one", field=field)
    ids = list(dict.fromkeys(parse_int_id(v.strip(), field) for v in values))
    if len(ids) > maximum:
        raise InvalidArgument(f"at most {maximum} at a time", field=field)
    return ids


def group_ref(value: str, field: str = "group_id") -> int | None:
    """A group id, or None for "default"."""
    value = value.strip()
    if value == DEFAULT_GROUP_ID:
        return None
    return parse_int_id(value, field)


def display_name(value: str, field: str = "name") -> str:
    name = bounded_text(value, field, NAME_LENGTH)
    if not name:
        raise InvalidArgument("is required", field=field)
    return name


class ClassificationServicer(pb_grpc.ClassificationServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _customers(self, session: AsyncSession, caller: Caller, ids: list[int]) -> list[int]:
        """``ids`` if every one names a live customer in the caller's scope."""
        repo = ClassificationRepository(session)
        live = await repo.live_ids(ids)
        for customer_id in ids:
            if customer_id not in live:
                raise NotFound(f"no customer {customer_id}", field="customer_ids")
        visible = await repo.visible_ids(ids, visible_customers(caller))
        for customer_id in ids:
            if customer_id not in visible:
                raise PermissionDenied(f"customer {customer_id} is outside your scope", field="customer_ids")
        return ids

    @staticmethod
    async def _tags(repo: ClassificationRepository, ids: list[int]) -> list[Tag]:
        found = await repo.tags_by_id(ids)
        for tag_id in ids:
            if tag_id not in found:
                raise NotFound(f"no tag {tag_id}", field="tag_ids")
        return [found[t] for t in ids]

    @staticmethod
    async def _group(repo: ClassificationRepository, group_id: int | None, field: str = "group_id") -> CustomerGroup:
        if group_id is None:
            raise FailedPrecondition("the default group cannot be changed", field=field)
        group = await repo.group(group_id)
        if group is None:
            raise NotFound(f"no group {group_id}", field=field)
        return group

    @staticmethod
    async def _unique_group_name(repo: ClassificationRepository, name: str, group_id: int | None = None) -> None:
        taken = await repo.group_named(name)
        if name.lower() == DEFAULT_GROUP_NAME.lower() or (taken is not None and taken.id != group_id):
            raise AlreadyExists(f"a group named {name!r} exists", field="name")

    # --- groups

    async def ListCustomerGroups(self, request: pb.ListCustomerGroupsRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ListCustomerGroupsResponse:
        scope = visible_customers(caller_of(context))
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else None
        if cursor is not None and (not isinstance(after, int) or after < 0):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        async with self.db.read() as session:
            repo = ClassificationRepository(session)
            # The default group is position 0, before every group id.
            with_default = after is None
            rows = await repo.groups(limit + 1 - with_default, after or 0)
            page: list[CustomerGroup | None] = [*([None] if with_default else []), *rows]
            more = len(page) > limit
            page = page[:limit]
            counts = await repo.group_counts([g.id if g else None for g in page], scope)
        token = encode_token({"after": page[-1].id if page[-1] else 0}) if more else ""
        return pb.ListCustomerGroupsResponse(
            groups=[group_to_proto(g, counts.get(g.id if g else None, 0)) for g in page], next_page_token=token)

    async def CreateCustomerGroup(self, request: pb.CreateCustomerGroupRequest,
                                  context: grpc.aio.ServicerContext) -> pb.CreateCustomerGroupResponse:
        require_admin(caller_of(context), "creating a group")
        name = display_name(request.name)

        async def create(session: AsyncSession) -> pb.CreateCustomerGroupResponse:
            repo = ClassificationRepository(session)
            await self._unique_group_name(repo, name)
            try:
                group = await repo.add_group(CustomerGroup(name=name, created_at=utcnow()))
            except IntegrityError:  # a concurrent twin took the name first
                raise AlreadyExists(f"a group named {name!r} exists", field="name") from None
            return pb.CreateCustomerGroupResponse(group=group_to_proto(group))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateCustomerGroup", request,
                                    pb.CreateCustomerGroupResponse, create)

    async def RenameCustomerGroup(self, request: pb.RenameCustomerGroupRequest,
                                  context: grpc.aio.ServicerContext) -> pb.RenameCustomerGroupResponse:
        caller = caller_of(context)
        require_admin(caller, "renaming a group")
        group_id = group_ref(request.group_id)
        name = display_name(request.name)

        async def rename(session: AsyncSession) -> pb.RenameCustomerGroupResponse:
            repo = ClassificationRepository(session)
            group = await self._group(repo, group_id)
            await self._unique_group_name(repo, name, group.id)
            group.name = name
            await session.flush()
            counts = await repo.group_counts([group.id], visible_customers(caller))
            return pb.RenameCustomerGroupResponse(group=group_to_proto(group, counts.get(group.id, 0)))

        return await run_idempotent(self.db, IdempotencyRecord, "RenameCustomerGroup", request,
                                    pb.RenameCustomerGroupResponse, rename)

    async def DeleteCustomerGroup(self, request: pb.DeleteCustomerGroupRequest,
                                  context: grpc.aio.ServicerContext) -> pb.DeleteCustomerGroupResponse:
        caller = caller_of(context)
        require_admin(caller, "deleting a group")
        group_id = group_ref(request.group_id)

        async def delete(session: AsyncSession) -> pb.DeleteCustomerGroupResponse:
            repo = ClassificationRepository(session)
            group = await self._group(repo, group_id)
            moved = await repo.customers_in_group(group.id)
            if moved:
                await repo.set_group(moved, None)
                for customer_id in moved:
                    timeline.record(session, customer_id, "attribute_changed", caller.staff_id, field="group_id",
                                    **{"from": str(group.id), "to": DEFAULT_GROUP_ID})
                    member_events.fields_changed(session, customer_id, ["group_id"], caller.staff_id)
            await session.delete(group)
            await session.flush()
            return pb.DeleteCustomerGroupResponse(moved_count=len(moved))

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteCustomerGroup", request,
                                    pb.DeleteCustomerGroupResponse, delete)

    async def MoveCustomersToGroup(self, request: pb.MoveCustomersToGroupRequest,
                                   context: grpc.aio.ServicerContext) -> pb.MoveCustomersToGroupResponse:
        caller = caller_of(context)
        visible_customers(caller)  # PERMISSION_DENIED for callers who classify nothing
        customer_ids = parse_ids(request.customer_ids, "customer_ids", MAX_CUSTOMERS)
        if not request.group_id.strip():
            raise InvalidArgument("is required (a group id or \"default\")", field="group_id")
        group_id = group_ref(request.group_id)

        async def move(session: AsyncSession) -> pb.MoveCustomersToGroupResponse:
            repo = ClassificationRepository(session)
            if group_id is not None:
                await self._group(repo, group_id)
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

        return await run_idempotent(self.db, IdempotencyRecord, "MoveCustomersToGroup", request,
                                    pb.MoveCustomersToGroupResponse, move)

    # --- tags

    async def ListTags(self, request: pb.ListTagsRequest, context: grpc.aio.ServicerContext) -> pb.ListTagsResponse:
        scope = visible_customers(caller_of(context))
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = None
        if cursor is not None:
            predefined, last_id = cursor.get("p"), cursor.get("id")
            if not isinstance(predefined, bool) or not isinstance(last_id, int):
                raise InvalidArgument("is not a token this list returned", field="page_token")
            after = (predefined, last_id)
        async with self.db.read() as session:
            repo = ClassificationRepository(session)
            rows = await repo.tags(limit + 1, after)
            page = rows[:limit]
            counts = await repo.tag_counts([t.id for t in page], scope)
        token = encode_token({"p": page[-1].predefined, "id": page[-1].id}) if len(rows) > limit else ""
        return pb.ListTagsResponse(tags=[tag_to_proto(t, counts.get(t.id, 0)) for t in page], next_page_token=token)

    async def CreateTag(self, request: pb.CreateTagRequest, context: grpc.aio.ServicerContext) -> pb.CreateTagResponse:
        require_admin(caller_of(context), "creating a tag")
        name = display_name(request.name)

        async def create(session: AsyncSession) -> pb.CreateTagResponse:
            repo = ClassificationRepository(session)
            if await repo.tag_named(name) is not None:
                raise AlreadyExists(f"a tag named {name!r} exists", field="name")
            try:
                tag = await repo.add_tag(Tag(name=name, predefined=False, created_at=utcnow()))
            except IntegrityError:  # a concurrent twin took the name first
                raise AlreadyExists(f"a tag named {name!r} exists", field="name") from None
            return pb.CreateTagResponse(tag=tag_to_proto(tag))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateTag", request, pb.CreateTagResponse, create)

    async def DeleteTag(self, request: pb.DeleteTagRequest, context: grpc.aio.ServicerContext) -> pb.DeleteTagResponse:
        caller = caller_of(context)
        require_admin(caller, "deleting a tag")
        tag_id = parse_int_id(request.tag_id.strip(), "tag_id")

        async def delete(session: AsyncSession) -> pb.DeleteTagResponse:
            repo = ClassificationRepository(session)
            tag = await repo.tag(tag_id)
            if tag is None:
                raise NotFound(f"no tag {tag_id}", field="tag_id")
            if tag.predefined:
                raise FailedPrecondition(f"{tag.name!r} is a predefined tag and cannot be deleted", field="tag_id")
            untagged = await tagging.remove_tag_everywhere(session, tag, caller.staff_id, utcnow())
            await session.delete(tag)
            await session.flush()
            return pb.DeleteTagResponse(untagged_count=untagged)

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteTag", request, pb.DeleteTagResponse, delete)

    async def TagCustomers(self, request: pb.TagCustomersRequest,
                           context: grpc.aio.ServicerContext) -> pb.TagCustomersResponse:
        caller = caller_of(context)
        visible_customers(caller)
        customer_ids = parse_ids(request.customer_ids, "customer_ids", MAX_CUSTOMERS)
        tag_ids = parse_ids(request.tag_ids, "tag_ids", MAX_TAGS)

        async def tag(session: AsyncSession) -> pb.TagCustomersResponse:
            tags = await self._tags(ClassificationRepository(session), tag_ids)
            await self._customers(session, caller, customer_ids)
            added = await tagging.add_tags(session, customer_ids, tags, caller.staff_id, utcnow())
            return pb.TagCustomersResponse(added_count=added)

        return await run_idempotent(self.db, IdempotencyRecord, "TagCustomers", request, pb.TagCustomersResponse, tag)

    async def UntagCustomers(self, request: pb.UntagCustomersRequest,
                             context: grpc.aio.ServicerContext) -> pb.UntagCustomersResponse:
        caller = caller_of(context)
        visible_customers(caller)
        customer_ids = parse_ids(request.customer_ids, "customer_ids", MAX_CUSTOMERS)
        tag_ids = parse_ids(request.tag_ids, "tag_ids", MAX_TAGS)

        async def untag(session: AsyncSession) -> pb.UntagCustomersResponse:
            tags = await self._tags(ClassificationRepository(session), tag_ids)
            await self._customers(session, caller, customer_ids)
            removed = await tagging.remove_tags(session, customer_ids, tags, caller.staff_id, utcnow())
            return pb.UntagCustomersResponse(removed_count=removed)

        return await run_idempotent(self.db, IdempotencyRecord, "UntagCustomers", request,
                                    pb.UntagCustomersResponse, untag)

    async def ListCustomerTags(self, request: pb.ListCustomerTagsRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListCustomerTagsResponse:
        caller = caller_of(context)
        scope = visible_customers(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else None
        if cursor is not None and (not isinstance(after, int) or cursor.get("c") != customer_id):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        async with self.db.read() as session:
            repo = ClassificationRepository(session)
            if await repo.live_customer(customer_id) is None:
                raise NotFound(f"no customer {customer_id}", field="customer_id")
            if not await repo.visible_ids([customer_id], scope):
                raise PermissionDenied(f"customer {customer_id} is outside your scope", field="customer_id")
            rows = await repo.customer_tags(customer_id, limit + 1, after)
        page = rows[:limit]
        token = encode_token({"after": page[-1].id, "c": customer_id}) if len(rows) > limit else ""
        return pb.ListCustomerTagsResponse(tags=[tag_to_proto(t) for t in page], next_page_token=token)
