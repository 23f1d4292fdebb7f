"""crowdpack.customer.v1.OrganizationService: malls, stores and staff."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import organization_service_pb2 as pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as pb_grpc
from services.common.auth import caller_of
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import run_idempotent
from services.common.clock import utcnow
from services.common.pagination import after_id, after_token, page_size
from services.common.validation import bounded_text, known_enum, mask_paths, parse_int_id, to_timestamp
from services.customer.models import IdempotencyRecord, Mall, Staff, Store
from services.customer.organization.repository import OrganizationRepository
from services.customer.scope import require_admin, require_super_admin
from services.customer.validation import normalize_phone

DEFAULT_TIMEZONE = "Asia/Shanghai"


def mall_to_proto(mall: Mall) -> pb.Mall:
    return pb.Mall(mall_id=str(mall.id), name=mall.name, timezone=mall.timezone,
                   create_time=to_timestamp(mall.created_at))


def store_to_proto(store: Store) -> pb.Store:
    return pb.Store(store_id=str(store.id), mall_id=str(store.mall_id), name=store.name, category=store.category,
                    business_format=store.business_format, floor=store.floor,
                    tags=[t for t in store.tags.split(",") if t], create_time=to_timestamp(store.created_at))


def staff_to_proto(staff: Staff, mall_ids: list[int]) -> pb.Staff:
    return pb.Staff(staff_id=str(staff.id), name=staff.name, phone=staff.phone or "", role=staff.role,
                    mall_ids=[str(m) for m in mall_ids], store_id=str(staff.store_id or ""),
                    disabled=staff.disabled, create_time=to_timestamp(staff.created_at))


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
    value = bounded_text(value, field, maximum)
    if not value:
        raise InvalidArgument("is required", field=field)
    return value


class OrganizationServicer(pb_grpc.OrganizationServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- malls

    async def CreateMall(self, request: pb.CreateMallRequest,
                         context: grpc.aio.ServicerContext) -> pb.CreateMallResponse:
        require_super_admin(caller_of(context), "creating a mall")
        name = required_name(request.name)
        timezone = check_timezone(request.timezone)

        async def create(session: AsyncSession) -> pb.CreateMallResponse:
            repo = OrganizationRepository(session)
            if await repo.mall_by_name(name) is not None:
                raise AlreadyExists(f"a mall named {name!r} exists", field="name")
            mall = Mall(name=name, timezone=timezone, created_at=utcnow())
            await repo.add(mall)
            return pb.CreateMallResponse(mall=mall_to_proto(mall))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateMall", request, pb.CreateMallResponse, create)

    async def GetMall(self, request: pb.GetMallRequest, context: grpc.aio.ServicerContext) -> pb.GetMallResponse:
        mall_id = parse_int_id(request.mall_id, "mall_id")
        async with self.db.read() as session:
            mall = await OrganizationRepository(session).mall(mall_id)
        if mall is None:
            raise NotFound(f"no mall {mall_id}", field="mall_id")
        return pb.GetMallResponse(mall=mall_to_proto(mall))

    async def UpdateMall(self, request: pb.UpdateMallRequest,
                         context: grpc.aio.ServicerContext) -> pb.UpdateMallResponse:
        require_super_admin(caller_of(context), "changing a mall")
        mall_id = parse_int_id(request.mall.mall_id, "mall.mall_id")
        paths = mask_paths(request.update_mask, {"name", "timezone"})
        name = required_name(request.mall.name, "mall.name") if "name" in paths else None
        timezone = check_timezone(request.mall.timezone) if "timezone" in paths else None

        async def update(session: AsyncSession) -> pb.UpdateMallResponse:
            repo = OrganizationRepository(session)
            mall = await repo.mall(mall_id)
            if mall is None:
                raise NotFound(f"no mall {mall_id}", field="mall.mall_id")
            if name is not None and name != mall.name:
                if await repo.mall_by_name(name) is not None:
                    raise AlreadyExists(f"a mall named {name!r} exists", field="mall.name")
                mall.name = name
            if timezone is not None:
                mall.timezone = timezone
            await session.flush()
            return pb.UpdateMallResponse(mall=mall_to_proto(mall))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateMall", request, pb.UpdateMallResponse, update)

    async def ListMalls(self, request: pb.ListMallsRequest, context: grpc.aio.ServicerContext) -> pb.ListMallsResponse:
        limit = page_size(request.page_size)
        async with self.db.read() as session:
            malls = await OrganizationRepository(session).malls(limit + 1, after_id(request.page_token))
        token = after_token(malls[limit - 1].id) if len(malls) > limit else ""
        return pb.ListMallsResponse(malls=[mall_to_proto(m) for m in malls[:limit]], next_page_token=token)

    # --- stores

    async def CreateStore(self, request: pb.CreateStoreRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateStoreResponse:
        require_admin(caller_of(context), "creating a store")
        mall_id = parse_int_id(request.mall_id, "mall_id")
        name = required_name(request.name)
        fields = dict(category=bounded_text(request.category, "category", 50),
                      business_format=bounded_text(request.business_format, "business_format", 50),
                      floor=bounded_text(request.floor, "floor", 20), tags=store_tags(list(request.tags)))

        async def create(session: AsyncSession) -> pb.CreateStoreResponse:
            repo = OrganizationRepository(session)
            if await repo.mall(mall_id) is None:
                raise NotFound(f"no mall {mall_id}", field="mall_id")
            if await repo.store_by_name(mall_id, name) is not None:
                raise AlreadyExists(f"mall {mall_id} has a store named {name!r}", field="name")
            store = Store(mall_id=mall_id, name=name, created_at=utcnow(), **fields)
            await repo.add(store)
            return pb.CreateStoreResponse(store=store_to_proto(store))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateStore", request, pb.CreateStoreResponse, create)

    async def GetStore(self, request: pb.GetStoreRequest, context: grpc.aio.ServicerContext) -> pb.GetStoreResponse:
        store_id = parse_int_id(request.store_id, "store_id")
        async with self.db.read() as session:
            store = await OrganizationRepository(session).store(store_id)
        if store is None:
            raise NotFound(f"no store {store_id}", field="store_id")
        return pb.GetStoreResponse(store=store_to_proto(store))

    async def UpdateStore(self, request: pb.UpdateStoreRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateStoreResponse:
        require_admin(caller_of(context), "changing a store")
        store_id = parse_int_id(request.store.store_id, "store.store_id")
        paths = mask_paths(request.update_mask, {"name", "category", "business_format", "floor", "tags"})
        s = request.store
        values: dict[str, str] = {}
        if "name" in paths:
            values["name"] = required_name(s.name, "store.name")
        for path, maximum in (("category", 50), ("business_format", 50), ("floor", 20)):
            if path in paths:
                values[path] = bounded_text(getattr(s, path), f"store.{path}", maximum)
        if "tags" in paths:
            values["tags"] = store_tags(list(s.tags))

        async def update(session: AsyncSession) -> pb.UpdateStoreResponse:
            repo = OrganizationRepository(session)
            store = await repo.store(store_id)
            if store is None:
                raise NotFound(f"no store {store_id}", field="store.store_id")
            if "name" in values and values["name"] != store.name \
                    and await repo.store_by_name(store.mall_id, values["name"]) is not None:
                raise AlreadyExists(f"mall {store.mall_id} has a store named {values['name']!r}", field="store.name")
            for key, value in values.items():
                setattr(store, key, value)
            await session.flush()
            return pb.UpdateStoreResponse(store=store_to_proto(store))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateStore", request, pb.UpdateStoreResponse, update)

    async def ListStores(self, request: pb.ListStoresRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListStoresResponse:
        limit = page_size(request.page_size)
        mall_id = parse_int_id(request.mall_id, "mall_id") if request.mall_id else None
        async with self.db.read() as session:
            stores = await OrganizationRepository(session).stores(
                limit + 1, after_id(request.page_token), mall_id=mall_id, category=request.category,
                business_format=request.business_format, floor=request.floor, tag=request.tag)
        token = after_token(stores[limit - 1].id) if len(stores) > limit else ""
        return pb.ListStoresResponse(stores=[store_to_proto(s) for s in stores[:limit]], next_page_token=token)

    # --- staff

    async def _check_staff_links(self, repo: OrganizationRepository, role: int, mall_ids: list[int],
                                 store_id: int | None, prefix: str) -> None:
        if role == pb.STAFF_ROLE_MALL_ADMIN and not mall_ids:
            raise InvalidArgument("a mall admin needs at least one mall", field=f"{prefix}mall_ids")
        if role == pb.STAFF_ROLE_STORE_STAFF and store_id is None:
            raise InvalidArgument("store staff need a store", field=f"{prefix}store_id")
        for mall_id in mall_ids:
            if await repo.mall(mall_id) is None:
                raise NotFound(f"no mall {mall_id}", field=f"{prefix}mall_ids")
        if store_id is not None and await repo.store(store_id) is None:
            raise NotFound(f"no store {store_id}", field=f"{prefix}store_id")

    async def CreateStaff(self, request: pb.CreateStaffRequest,
                          context: grpc.aio.ServicerContext) -> pb.CreateStaffResponse:
        require_super_admin(caller_of(context), "creating staff accounts")
        name = required_name(request.name)
        phone = normalize_phone(request.phone)
        role = known_enum(pb.StaffRole, request.role, "role", allow_unspecified=False)
        mall_ids = [parse_int_id(m, "mall_ids") for m in request.mall_ids]
        store_id = parse_int_id(request.store_id, "store_id") if request.store_id else None

        async def create(session: AsyncSession) -> pb.CreateStaffResponse:
            repo = OrganizationRepository(session)
            await self._check_staff_links(repo, role, mall_ids, store_id, "")
            if phone and await repo.staff_by_phone(phone) is not None:
                raise AlreadyExists("a staff member with this phone exists", field="phone")
            staff = Staff(name=name, phone=phone, role=role, store_id=store_id, disabled=False, created_at=utcnow())
            await repo.add(staff)
            await repo.set_staff_malls(staff.id, mall_ids)
            await repo.refresh_store_member(phone)
            return pb.CreateStaffResponse(staff=staff_to_proto(staff, sorted(set(mall_ids))))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateStaff", request, pb.CreateStaffResponse, create)

    async def GetStaff(self, request: pb.GetStaffRequest, context: grpc.aio.ServicerContext) -> pb.GetStaffResponse:
        staff_id = parse_int_id(request.staff_id, "staff_id")
        async with self.db.read() as session:
            repo = OrganizationRepository(session)
            staff = await repo.staff(staff_id)
            if staff is None:
                raise NotFound(f"no staff member {staff_id}", field="staff_id")
            malls = (await repo.staff_malls([staff_id])).get(staff_id, [])
        return pb.GetStaffResponse(staff=staff_to_proto(staff, malls))

    async def UpdateStaff(self, request: pb.UpdateStaffRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateStaffResponse:
        require_super_admin(caller_of(context), "changing staff accounts")
        staff_id = parse_int_id(request.staff.staff_id, "staff.staff_id")
        paths = mask_paths(request.update_mask, {"name", "phone", "role", "mall_ids", "store_id", "disabled"})
        s = request.staff
        name = required_name(s.name, "staff.name") if "name" in paths else None
        phone = normalize_phone(s.phone, "staff.phone") if "phone" in paths else None
        role = known_enum(pb.StaffRole, s.role, "staff.role", allow_unspecified=False) if "role" in paths else None
        mall_ids = [parse_int_id(m, "staff.mall_ids") for m in s.mall_ids] if "mall_ids" in paths else None
        store_id = (parse_int_id(s.store_id, "staff.store_id") if s.store_id else None) if "store_id" in paths \
            else None

        async def update(session: AsyncSession) -> pb.UpdateStaffResponse:
            repo = OrganizationRepository(session)
            staff = await repo.staff(staff_id)
            if staff is None:
                raise NotFound(f"no staff member {staff_id}", field="staff.staff_id")
            old_phone = staff.phone
            current_malls = (await repo.staff_malls([staff_id])).get(staff_id, [])
            new_role = role if role is not None else staff.role
            new_malls = mall_ids if mall_ids is not None else current_malls
            new_store = store_id if "store_id" in paths else staff.store_id
            await self._check_staff_links(repo, new_role, new_malls, new_store, "staff.")
            if "phone" in paths and phone != staff.phone and phone \
                    and await repo.staff_by_phone(phone) is not None:
                raise AlreadyExists("a staff member with this phone exists", field="staff.phone")
            if name is not None:
                staff.name = name
            if "phone" in paths:
                staff.phone = phone
            staff.role, staff.store_id = new_role, new_store
            if "disabled" in paths:
                staff.disabled = s.disabled
            await session.flush()
            if mall_ids is not None:
                await repo.set_staff_malls(staff_id, mall_ids)
            for affected in {old_phone, staff.phone}:
                await repo.refresh_store_member(affected)
            return pb.UpdateStaffResponse(staff=staff_to_proto(staff, sorted(set(new_malls))))

        return await run_idempotent(self.db, IdempotencyRecord, "UpdateStaff", request, pb.UpdateStaffResponse, update)

    async def ListStaff(self, request: pb.ListStaffRequest, context: grpc.aio.ServicerContext) -> pb.ListStaffResponse:
        limit = page_size(request.page_size)
        role = known_enum(pb.StaffRole, request.role, "role")
        mall_id = parse_int_id(request.mall_id, "mall_id") if request.mall_id else None
        async with self.db.read() as session:
            repo = OrganizationRepository(session)
            staff = await repo.staff_page(limit + 1, after_id(request.page_token), role=role, mall_id=mall_id)
            malls = await repo.staff_malls([s.id for s in staff[:limit]])
        token = after_token(staff[limit - 1].id) if len(staff) > limit else ""
        return pb.ListStaffResponse(staff=[staff_to_proto(s, malls.get(s.id, [])) for s in staff[:limit]],
                                    next_page_token=token)
