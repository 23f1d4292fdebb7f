"""crowdpack.customer.v1.ClassificationService: groups and tags for every customer."""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import classification_service_pb2 as pb
from crowdpack.customer.v1 import classification_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.pagination import decode_token, page_size
from services.common.validation import bounded_text, parse_int_id
from services.customer.classification.convert import DEFAULT_GROUP_ID, group_to_proto, tag_to_proto
from services.customer.classification.service import ClassificationService, Scope
from services.customer.ids import parse_ids
from services.customer.scope import require_admin

MAX_CUSTOMERS = 1000
MAX_TAGS = 20
NAME_LENGTH = 50


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
    def __init__(self, db: Database, scope: Scope, clock: Clock = utcnow) -> None:
        self.service = ClassificationService(db, scope, clock)

    # --- groups

    async def ListCustomerGroups(self, request: pb.ListCustomerGroupsRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ListCustomerGroupsResponse:
        caller = caller_of(context)
        self.service.scope(caller)  # PERMISSION_DENIED for callers who classify nothing
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else None
        if cursor is not None and (not isinstance(after, int) or after < 0):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        page, counts = await self.service.groups(caller, limit, after)
        return pb.ListCustomerGroupsResponse(
            groups=[group_to_proto(g, counts.get(g.id if g else None, 0)) for g in page.items],
            next_page_token=page.next_token(lambda g: {"after": g.id if g else 0}))

    async def CreateCustomerGroup(self, request: pb.CreateCustomerGroupRequest,
                                  context: grpc.aio.ServicerContext) -> pb.CreateCustomerGroupResponse:
        require_admin(caller_of(context), "creating a group")
        return await self.service.create_group(request, display_name(request.name))

    async def RenameCustomerGroup(self, request: pb.RenameCustomerGroupRequest,
                                  context: grpc.aio.ServicerContext) -> pb.RenameCustomerGroupResponse:
        caller = caller_of(context)
        require_admin(caller, "renaming a group")
        group_id = group_ref(request.group_id)
        name = display_name(request.name)
        return await self.service.rename_group(request, caller, group_id, name)

    async def DeleteCustomerGroup(self, request: pb.DeleteCustomerGroupRequest,
                                  context: grpc.aio.ServicerContext) -> pb.DeleteCustomerGroupResponse:
        caller = caller_of(context)
        require_admin(caller, "deleting a group")
        return await self.service.delete_group(request, caller, group_ref(request.group_id))

    async def MoveCustomersToGroup(self, request: pb.MoveCustomersToGroupRequest,
                                   context: grpc.aio.ServicerContext) -> pb.MoveCustomersToGroupResponse:
        caller = caller_of(context)
        self.service.scope(caller)  # PERMISSION_DENIED for callers who classify nothing
        customer_ids = parse_ids(request.customer_ids, "customer_ids", MAX_CUSTOMERS)
        if not request.group_id.strip():
            raise InvalidArgument("is required (a group id or \"default\")", field="group_id")
        group_id = group_ref(request.group_id)
        return await self.service.move_to_group(request, caller, customer_ids, group_id)

    # --- tags

    async def ListTags(self, request: pb.ListTagsRequest, context: grpc.aio.ServicerContext) -> pb.ListTagsResponse:
        caller = caller_of(context)
        self.service.scope(caller)
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = None
        if cursor is not None:
            predefined, last_id = cursor.get("p"), cursor.get("id")
            if not isinstance(predefined, bool) or not isinstance(last_id, int):
                raise InvalidArgument("is not a token this list returned", field="page_token")
            after = (predefined, last_id)
        page, counts = await self.service.tags(caller, limit, after)
        return pb.ListTagsResponse(tags=[tag_to_proto(t, counts.get(t.id, 0)) for t in page.items],
                                   next_page_token=page.next_token(lambda t: {"p": t.predefined, "id": t.id}))

    async def CreateTag(self, request: pb.CreateTagRequest, context: grpc.aio.ServicerContext) -> pb.CreateTagResponse:
        require_admin(caller_of(context), "creating a tag")
        return await self.service.create_tag(request, display_name(request.name))

    async def DeleteTag(self, request: pb.DeleteTagRequest, context: grpc.aio.ServicerContext) -> pb.DeleteTagResponse:
        caller = caller_of(context)
        require_admin(caller, "deleting a tag")
        return await self.service.delete_tag(request, caller, parse_int_id(request.tag_id.strip(), "tag_id"))

    async def TagCustomers(self, request: pb.TagCustomersRequest,
                           context: grpc.aio.ServicerContext) -> pb.TagCustomersResponse:
        caller = caller_of(context)
        self.service.scope(caller)
        customer_ids = parse_ids(request.customer_ids, "customer_ids", MAX_CUSTOMERS)
        tag_ids = parse_ids(request.tag_ids, "tag_ids", MAX_TAGS)
        return await self.service.tag_customers(request, caller, customer_ids, tag_ids)

    async def UntagCustomers(self, request: pb.UntagCustomersRequest,
                             context: grpc.aio.ServicerContext) -> pb.UntagCustomersResponse:
        caller = caller_of(context)
        self.service.scope(caller)
        customer_ids = parse_ids(request.customer_ids, "customer_ids", MAX_CUSTOMERS)
        tag_ids = parse_ids(request.tag_ids, "tag_ids", MAX_TAGS)
        return await self.service.untag_customers(request, caller, customer_ids, tag_ids)

    async def ListCustomerTags(self, request: pb.ListCustomerTagsRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListCustomerTagsResponse:
        caller = caller_of(context)
        self.service.scope(caller)
        customer_id = parse_int_id(request.customer_id.strip(), "customer_id")
        limit = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        after = cursor.get("after") if cursor else None
        if cursor is not None and (not isinstance(after, int) or cursor.get("c") != customer_id):
            raise InvalidArgument("is not a token this list returned", field="page_token")
        page = await self.service.customer_tags(caller, customer_id, limit, after)
        return pb.ListCustomerTagsResponse(tags=[tag_to_proto(t) for t in page.items],
                                           next_page_token=page.next_token(lambda t: {"after": t.id,
                                                                                     "c": customer_id}))
