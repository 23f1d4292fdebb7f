"""crowdpack.customer.v1.OrganizationService: malls, stores and staff."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc

from crowdpack.customer.v1 import organization_service_pb2 as pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import InvalidArgument
from services.common.pagination import after_id, page_size
from services.common.validation import bounded_text, known_enum, mask_paths, name_text, optional_id, parse_int_id
from services.customer.organization.convert import mall_to_proto, staff_to_proto, store_to_proto
from services.customer.organization.service import OrganizationService, StaffChange
from services.customer.scope import require_admin, require_super_admin
from services.customer.validation import normalize_phone

DEFAULT_TIMEZONE = "Asia/Shanghai"


def check_timezone(value: str) -> str:
    value = value.strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {value!r} (use an IANA name like Asia/Shanghai)",
                              field="timezone") from None
    return value


def store_tags(tags: list[str]) -> str:
    cleaned = []
    for tag in tags:
        tag = bounded_text(tag, "tags", 50)
        if not tag or "," in tag:
            raise InvalidArgument("each tag must be non-empty and contain no comma", field="tags")
        if tag not in cleaned:
            cleaned.append(tag)
    joined = ",".join(cleaned)
    if len(joined) > 500:
        raise InvalidArgument("too many tags", field="tags")
    return joined


def required_name(value: str, field: str = "name", maximum: int = 100) -> str:
    value = name_text(value, field, maximum)
    if not value:
        raise InvalidArgument("is required", field=field)
    return value


class OrganizationServicer(pb_grpc.OrganizationServiceServicer):
    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self.service = OrganizationService(db, clock)

    # --- malls

    async def CreateMall(self, request: pb.CreateMallRequest,
                         context: grpc.aio.ServicerContext) -> pb.CreateMallResponse:
        require_super_admin(caller_of(context), "creating a mall")
        return await self.service.create_mall(request, required_name(request.name), check_timezone(request.timezone))

    async def GetMall(self, request: pb.GetMallRequest, context: grpc.aio.ServicerContext) -> pb.GetMallResponse:
        mall = await self.service.mall(parse_int_id(request.mall_id, "mall_id"))
        return pb.GetMallResponse(mall=mall_to_proto(mall))

    async def UpdateMall(self, request: pb.UpdateMallRequest,
                         context: grpc.aio.ServicerContext) -> pb.UpdateMallResponse:
        require_super_admin(caller_of(context), "changing a mall")
        mall_id = parse_int_id(request.mall.mall_id, "mall.mall_id")
        paths = mask_paths(request.update_mask, {"name", "timezone"})
        name = required_name(request.mall.name, "mall.name") if "name" in paths else None
        timezone = check_timezone(request.mall.timezone) if "timezone" in paths else None
        return await self.service.update_mall(request, mall_id, name, timezone)

    async def ListMalls(self, request: pb.ListMallsRequest, context: grpc.aio.ServicerContext) -> pb.ListMallsResponse:
        page = await self.service.malls(page_size(request.page_size), after_id(request.page_token))
        return pb.ListMallsResponse(malls=[mall_to_proto(m) for m in page.items],
                                    next_page_token=page.next_token(lambda m: {"after": m.id}))

    # --- stores

    async def CreateStore(self, request: pb.CreateStoreRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateStoreResponse:
        require_admin(caller_of(context), "creating a store")
        mall_id = parse_int_id(request.mall_id, "mall_id")
        name = required_name(request.name)
        fields = dict(category=bounded_text(request.category, "category", 50),
                      business_format=bounded_text(request.business_format, "business_format", 50),
                      floor=bounded_text(request.floor, "floor", 20), tags=store_tags(list(request.tags)),
                      brand=bounded_text(request.brand, "brand", 100))
        return await self.service.create_store(request, mall_id, name, fields)

    async def GetStore(self, request: pb.GetStoreRequest, context: grpc.aio.ServicerContext) -> pb.GetStoreResponse:
        store = await self.service.store(parse_int_id(request.store_id, "store_id"))
        return pb.GetStoreResponse(store=store_to_proto(store))

    async def UpdateStore(self, request: pb.UpdateStoreRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateStoreResponse:
        require_admin(caller_of(context), "changing a store")
        store_id = parse_int_id(request.store.store_id, "store.store_id")
        paths = mask_paths(request.update_mask, {"name", "category", "business_format", "floor", "tags", "brand"})
        s = request.store
        values: dict[str, str] = {}
        if "name" in paths:
            values["name"] = required_name(s.name, "store.name")
        for path, maximum in (("category", 50), ("business_format", 50), ("floor", 20), ("brand", 100)):
            if path in paths:
                values[path] = bounded_text(getattr(s, path), f"store.{path}", maximum)
        if "tags" in paths:
            values["tags"] = store_tags(list(s.tags))
        return await self.service.update_store(request, store_id, values)

    async def ListStores(self, request: pb.ListStoresRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListStoresResponse:
        limit = page_size(request.page_size)
        page = await self.service.stores(
            limit, after_id(request.page_token), mall_id=optional_id(request.mall_id, "mall_id"),
            category=request.category, business_format=request.business_format, floor=request.floor,
            tag=request.tag, brand=request.brand)
        return pb.ListStoresResponse(stores=[store_to_proto(s) for s in page.items],
                                     next_page_token=page.next_token(lambda s: {"after": s.id}))

    # --- staff

    async def CreateStaff(self, request: pb.CreateStaffRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateStaffResponse:
        require_super_admin(caller_of(context), "creating staff accounts")
        name = required_name(request.name)
        phone = normalize_phone(request.phone)
        role = known_enum(pb.StaffRole, request.role, "role", allow_unspecified=False)
        mall_ids = [parse_int_id(m, "mall_ids") for m in request.mall_ids]
        store_id = optional_id(request.store_id, "store_id")
        return await self.service.create_staff(request, name, phone, role, mall_ids, store_id)

    async def GetStaff(self, request: pb.GetStaffRequest, context: grpc.aio.ServicerContext) -> pb.GetStaffResponse:
        staff, malls = await self.service.staff_member(parse_int_id(request.staff_id, "staff_id"))
        return pb.GetStaffResponse(staff=staff_to_proto(staff, malls))

    async def UpdateStaff(self, request: pb.UpdateStaffRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateStaffResponse:
        require_super_admin(caller_of(context), "changing staff accounts")
        staff_id = parse_int_id(request.staff.staff_id, "staff.staff_id")
        paths = frozenset(mask_paths(request.update_mask,
                                     {"name", "phone", "role", "mall_ids", "store_id", "disabled"}))
        s = request.staff
        change = StaffChange(
            paths=paths,
            name=required_name(s.name, "staff.name") if "name" in paths else None,
            phone=normalize_phone(s.phone, "staff.phone") if "phone" in paths else None,
            role=known_enum(pb.StaffRole, s.role, "staff.role", allow_unspecified=False) if "role" in paths
            else None,
            mall_ids=[parse_int_id(m, "staff.mall_ids") for m in s.mall_ids] if "mall_ids" in paths else None,
            store_id=optional_id(s.store_id, "staff.store_id") if "store_id" in paths else None,
            disabled=s.disabled)
        return await self.service.update_staff(request, staff_id, change)

    async def ListStaff(self, request: pb.ListStaffRequest, context: grpc.aio.ServicerContext) -> pb.ListStaffResponse:
        limit = page_size(request.page_size)
        role = known_enum(pb.StaffRole, request.role, "role")
        mall_id = optional_id(request.mall_id, "mall_id")
        page, malls = await self.service.staff_page(limit, after_id(request.page_token), role=role, mall_id=mall_id)
        return pb.ListStaffResponse(staff=[staff_to_proto(s, malls.get(s.id, [])) for s in page.items],
                                    next_page_token=page.next_token(lambda s: {"after": s.id}))
