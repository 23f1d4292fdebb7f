"""Malls, stores and staff: the domain operations of OrganizationService, each in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import organization_service_pb2 as pb
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import idempotent
from services.common.pagination import Page, keyset_page
from services.customer.feature import FeatureService
from services.customer.organization import events
from services.customer.organization.convert import mall_to_proto, staff_to_proto, store_to_proto
from services.customer.organization.models import Mall, Staff, Store
from services.customer.organization.repository import OrganizationRepository
from services.customer.store_members import refresh_store_member


@dataclass(frozen=True)
class StaffChange:
    """The parsed fields of an UpdateStaff; ``paths`` says which of them to set."""

    paths: frozenset[str]
    name: str | None
    phone: str | None
    role: int | None
    mall_ids: list[int] | None
    store_id: int | None
    disabled: bool


async def _check_staff_links(repo: OrganizationRepository, role: int, mall_ids: list[int], store_id: int | None,
                             prefix: str) -> None:
    if role == pb.STAFF_ROLE_MALL_ADMIN and not mall_ids:
        raise InvalidArgument("a mall admin needs at least one mall", field=f"{prefix}mall_ids")
    if role == pb.STAFF_ROLE_STORE_STAFF and store_id is None:
        raise InvalidArgument("store staff need a store", field=f"{prefix}store_id")
    for mall_id in mall_ids:
        if await repo.mall(mall_id) is None:
            raise NotFound(f"no mall {mall_id}", field=f"{prefix}mall_ids")
    if store_id is not None and await repo.store(store_id) is None:
        raise NotFound(f"no store {store_id}", field=f"{prefix}store_id")


class OrganizationService(FeatureService):
    # --- malls

    @idempotent("CreateMall")
    async def create_mall(self, session: AsyncSession, request: pb.CreateMallRequest, name: str,
                          timezone: str) -> pb.CreateMallResponse:
        repo = OrganizationRepository(session)
        if await repo.mall_by_name(name) is not None:
            raise AlreadyExists(f"a mall named {name!r} exists", field="name")
        mall = Mall(name=name, timezone=timezone, created_at=self.clock())
        await repo.add(mall)
        events.mall_changed(session, mall, self.clock())
        return pb.CreateMallResponse(mall=mall_to_proto(mall))

    async def mall(self, mall_id: int) -> Mall:
        async with self.db.read() as session:
            mall = await OrganizationRepository(session).mall(mall_id)
        if mall is None:
            raise NotFound(f"no mall {mall_id}", field="mall_id")
        return mall

    @idempotent("UpdateMall")
    async def update_mall(self, session: AsyncSession, request: pb.UpdateMallRequest, mall_id: int,
                          name: str | None, timezone: str | None) -> pb.UpdateMallResponse:
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
        events.mall_changed(session, mall, self.clock())
        return pb.UpdateMallResponse(mall=mall_to_proto(mall))

    async def malls(self, limit: int, after_id: int) -> Page[Mall]:
        async with self.db.read() as session:
            return await keyset_page(lambda n: OrganizationRepository(session).malls(n, after_id), limit)

    # --- stores

    @idempotent("CreateStore")
    async def create_store(self, session: AsyncSession, request: pb.CreateStoreRequest, mall_id: int, name: str,
                           fields: dict[str, str]) -> pb.CreateStoreResponse:
        repo = OrganizationRepository(session)
        if await repo.mall(mall_id) is None:
            raise NotFound(f"no mall {mall_id}", field="mall_id")
        if await repo.store_by_name(mall_id, name) is not None:
            raise AlreadyExists(f"mall {mall_id} has a store named {name!r}", field="name")
        store = Store(mall_id=mall_id, name=name, created_at=self.clock(), **fields)
        await repo.add(store)
        events.store_changed(session, store, self.clock())
        return pb.CreateStoreResponse(store=store_to_proto(store))

    async def store(self, store_id: int) -> Store:
        async with self.db.read() as session:
            store = await OrganizationRepository(session).store(store_id)
        if store is None:
            raise NotFound(f"no store {store_id}", field="store_id")
        return store

    @idempotent("UpdateStore")
    async def update_store(self, session: AsyncSession, request: pb.UpdateStoreRequest, store_id: int,
                           values: dict[str, str]) -> pb.UpdateStoreResponse:
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
        events.store_changed(session, store, self.clock())
        return pb.UpdateStoreResponse(store=store_to_proto(store))

    async def stores(self, limit: int, after_id: int, *, mall_id: int | None, category: str, business_format: str,
                     floor: str, tag: str, brand: str = "") -> Page[Store]:
        async with self.db.read() as session:
            return await keyset_page(lambda n: OrganizationRepository(session).stores(
                n, after_id, mall_id=mall_id, category=category, business_format=business_format, floor=floor,
                tag=tag, brand=brand), limit)

    # --- staff

    @idempotent("CreateStaff")
    async def create_staff(self, session: AsyncSession, request: pb.CreateStaffRequest, name: str,
                           phone: str | None, role: int, mall_ids: list[int],
                           store_id: int | None) -> pb.CreateStaffResponse:
        repo = OrganizationRepository(session)
        await _check_staff_links(repo, role, mall_ids, store_id, "")
        if phone and await repo.staff_by_phone(phone) is not None:
            raise AlreadyExists("a staff member with this phone exists", field="phone")
        staff = Staff(name=name, phone=phone, role=role, store_id=store_id, disabled=False, created_at=self.clock())
        await repo.add(staff)
        await repo.set_staff_malls(staff.id, mall_ids)
        await refresh_store_member(session, phone)
        return pb.CreateStaffResponse(staff=staff_to_proto(staff, sorted(set(mall_ids))))

    async def staff_member(self, staff_id: int) -> tuple[Staff, list[int]]:
        """A staff member and their malls."""
        async with self.db.read() as session:
            repo = OrganizationRepository(session)
            staff = await repo.staff(staff_id)
            if staff is None:
                raise NotFound(f"no staff member {staff_id}", field="staff_id")
            return staff, (await repo.staff_malls([staff_id])).get(staff_id, [])

    @idempotent("UpdateStaff")
    async def update_staff(self, session: AsyncSession, request: pb.UpdateStaffRequest, staff_id: int,
                           change: StaffChange) -> pb.UpdateStaffResponse:
        paths = change.paths
        repo = OrganizationRepository(session)
        staff = await repo.staff(staff_id)
        if staff is None:
            raise NotFound(f"no staff member {staff_id}", field="staff.staff_id")
        old_phone = staff.phone
        current_malls = (await repo.staff_malls([staff_id])).get(staff_id, [])
        new_role = change.role if change.role is not None else staff.role
        new_malls = change.mall_ids if change.mall_ids is not None else current_malls
        new_store = change.store_id if "store_id" in paths else staff.store_id
        await _check_staff_links(repo, new_role, new_malls, new_store, "staff.")
        if "phone" in paths and change.phone != staff.phone and change.phone \
                and await repo.staff_by_phone(change.phone) is not None:
            raise AlreadyExists("a staff member with this phone exists", field="staff.phone")
        if change.name is not None:
            staff.name = change.name
        if "phone" in paths:
            staff.phone = change.phone
        staff.role, staff.store_id = new_role, new_store
        if "disabled" in paths:
            staff.disabled = change.disabled
        await session.flush()
        if change.mall_ids is not None:
            await repo.set_staff_malls(staff_id, change.mall_ids)
        for affected in {old_phone, staff.phone}:
            await refresh_store_member(session, affected)
        return pb.UpdateStaffResponse(staff=staff_to_proto(staff, sorted(set(new_malls))))

    async def staff_page(self, limit: int, after_id: int, *, role: int,
                         mall_id: int | None) -> tuple[Page[Staff], dict[int, list[int]]]:
        """A page of staff, and each one's malls."""
        async with self.db.read() as session:
            repo = OrganizationRepository(session)
            page = await keyset_page(lambda n: repo.staff_page(n, after_id, role=role, mall_id=mall_id), limit)
            return page, await repo.staff_malls([s.id for s in page.items])
