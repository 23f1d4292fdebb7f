"""Crowd categories and packages: the domain operations of CrowdService, each in its own transaction.

A package change that needs computing wakes the refresher once its transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

import segment_engine as se
from crowdpack.customer.v1 import crowd_pb2
from crowdpack.customer.v1 import crowd_service_pb2 as pb
from services.common.auth import Caller, Role
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.downloads import DEFAULT_ZONE
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import idempotent
from services.common.pagination import Page, keyset_page
from services.customer.crowds.catalogue import translate
from services.customer.crowds.convert import category_to_proto, package_to_proto
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.models import CrowdCategory, CrowdPackage
from services.customer.crowds.refresher import Refresher
from services.customer.crowds.repository import CrowdRepository
from services.customer.exports import MallZones
from services.customer.feature import FeatureService
from services.customer.members.repository import MemberRepository
from services.customer.models import Customer, CustomerStats
from services.customer.scope import require_admin


def check_mall_scope(caller: Caller, mall_id: int) -> None:
    require_admin(caller, "managing crowd packages")
    if caller.role == Role.MALL_ADMIN and str(mall_id) not in caller.mall_ids:
        raise PermissionDenied(f"mall {mall_id} is not one of your malls")


@dataclass(frozen=True)
class PackageChange:
    """The parsed fields of an UpdatePackage (None: unchanged)."""

    name: str | None
    remark: str | None
    category_id: int | None
    definition: crowd_pb2.CrowdDefinition | None


@dataclass(frozen=True)
class PackageMembers:
    """Members of a package's result, in id order, with what their views join in, and the result's size."""

    ids: list[int]
    rows: dict[int, Customer]
    tags: dict[int, list[str]]
    stats: dict[int, CustomerStats]
    malls: dict[int, list[int]]
    total: int
    zone: ZoneInfo = DEFAULT_ZONE  # the package's mall's time zone (for its download)


async def _mall(repo: CrowdRepository, mall_id: int, field: str = "mall_id") -> None:
    if not await repo.mall_exists(mall_id):
        raise NotFound(f"no mall {mall_id}", field=field)


async def _category(repo: CrowdRepository, category_id: int, caller: Caller,
                    field: str = "category_id") -> CrowdCategory:
    category = await repo.category(category_id)
    if category is None:
        raise NotFound(f"no category {category_id}", field=field)
    check_mall_scope(caller, category.mall_id)
    return category


async def _package(repo: CrowdRepository, package_id: int, caller: Caller, field: str = "package_id") -> CrowdPackage:
    package = await repo.package(package_id)
    if package is None:
        raise NotFound(f"no crowd package {package_id}", field=field)
    check_mall_scope(caller, package.mall_id)
    return package


class CrowdService(FeatureService):
    def __init__(self, db: Database, index: CrowdIndex, refresher: Refresher, clock: Clock = utcnow) -> None:
        super().__init__(db, clock)
        self.index = index
        self.refresher = refresher

    # --- categories

    @idempotent("CreateCategory")
    async def create_category(self, session: AsyncSession, request: pb.CreateCategoryRequest, mall_id: int,
                              name: str) -> pb.CreateCategoryResponse:
        repo = CrowdRepository(session)
        await _mall(repo, mall_id)
        await repo.default_category(mall_id)
        if await repo.category_named(mall_id, name) is not None:
            raise AlreadyExists(f"the mall has a category named {name!r}", field="name")
        category = CrowdCategory(mall_id=mall_id, name=name, position=await repo.next_position(mall_id),
                                 is_default=False, created_at=self.clock())
        await repo.add(category)
        return pb.CreateCategoryResponse(category=category_to_proto(category))

    @idempotent("RenameCategory")
    async def rename_category(self, session: AsyncSession, request: pb.RenameCategoryRequest, caller: Caller,
                              category_id: int, name: str) -> pb.RenameCategoryResponse:
        repo = CrowdRepository(session)
        category = await _category(repo, category_id, caller)
        if category.is_default:
            raise FailedPrecondition("the uncategorised category keeps its name", field="category_id")
        other = await repo.category_named(category.mall_id, name)
        if other is not None and other.id != category.id:
            raise AlreadyExists(f"the mall has a category named {name!r}", field="name")
        category.name = name
        await session.flush()
        return pb.RenameCategoryResponse(category=category_to_proto(category))

    @idempotent("ReorderCategories")
    async def reorder_categories(self, session: AsyncSession, request: pb.ReorderCategoriesRequest, mall_id: int,
                                 order: list[int]) -> pb.ReorderCategoriesResponse:
        repo = CrowdRepository(session)
        await _mall(repo, mall_id)
        categories = {c.id: c for c in await repo.categories(mall_id)}
        if sorted(order) != sorted(categories):
            raise InvalidArgument("must list every category of the mall exactly once", field="category_ids")
        for position, category_id in enumerate(order):
            categories[category_id].position = position
        await session.flush()
        return pb.ReorderCategoriesResponse(categories=[category_to_proto(categories[c]) for c in order])

    @idempotent("DeleteCategory")
    async def delete_category(self, session: AsyncSession, request: pb.DeleteCategoryRequest, caller: Caller,
                              category_id: int) -> pb.DeleteCategoryResponse:
        repo = CrowdRepository(session)
        category = await _category(repo, category_id, caller)
        if category.is_default:
            raise FailedPrecondition("the uncategorised category cannot be deleted", field="category_id")
        fallback = await repo.default_category(category.mall_id)
        await repo.move_packages(category.id, fallback.id)
        response = pb.DeleteCategoryResponse(category=category_to_proto(category))
        await repo.delete(category)
        return response

    async def categories(self, mall_id: int) -> tuple[list[CrowdCategory], dict[int, int]]:
        """Every category of the mall, in position order, and how many packages each holds."""
        # The default category is created on first use, so this read may write once.
        async with self.db.transaction() as session:
            repo = CrowdRepository(session)
            await _mall(repo, mall_id)
            categories = list(await repo.categories(mall_id))
            return categories, await repo.package_counts([c.id for c in categories])

    # --- packages

    async def create_package(self, request: pb.CreatePackageRequest, caller: Caller, mall_id: int, name: str,
                             remark: str, category_id: int | None) -> pb.CreatePackageResponse:
        response = await self._create_package(request, caller, mall_id, name, remark, category_id)
        self.refresher.wake()
        return response

    @idempotent("CreatePackage")
    async def _create_package(self, session: AsyncSession, request: pb.CreatePackageRequest, caller: Caller,
                              mall_id: int, name: str, remark: str,
                              category_id: int | None) -> pb.CreatePackageResponse:
        repo = CrowdRepository(session)
        await _mall(repo, mall_id)
        if category_id is None:
            category = await repo.default_category(mall_id)
        else:
            category = await _category(repo, category_id, caller)
            if category.mall_id != mall_id:
                raise InvalidArgument(f"category {category_id} belongs to another mall", field="category_id")
        if await repo.package_named(mall_id, name) is not None:
            raise AlreadyExists(f"the mall has a package named {name!r}", field="name")
        await translate(session, mall_id, request.definition, self.clock(), "definition")
        now = self.clock()
        package = CrowdPackage(mall_id=mall_id, category_id=category.id, name=name, remark=remark,
                               definition=request.definition.SerializeToString(deterministic=True),
                               status=pb.PACKAGE_STATUS_UPDATING, member_count=0, failure_reason="",
                               refresh_requested_at=now, next_attempt_at=now, attempts=0,
                               creator_id=caller.staff_id, editor_id=caller.staff_id, created_at=now,
                               updated_at=now)
        await repo.add(package)
        return pb.CreatePackageResponse(package=package_to_proto(package))

    async def update_package(self, request: pb.UpdatePackageRequest, caller: Caller, package_id: int,
                             change: PackageChange) -> pb.UpdatePackageResponse:
        response = await self._update_package(request, caller, package_id, change)
        self.refresher.wake()
        return response

    @idempotent("UpdatePackage")
    async def _update_package(self, session: AsyncSession, request: pb.UpdatePackageRequest, caller: Caller,
                              package_id: int, change: PackageChange) -> pb.UpdatePackageResponse:
        repo = CrowdRepository(session)
        package = await _package(repo, package_id, caller, "package.package_id")
        if package.status == pb.PACKAGE_STATUS_UPDATING:
            raise FailedPrecondition("the package is being computed; try again when it is ready",
                                     field="package.package_id")
        if change.name is not None and change.name != package.name:
            if await repo.package_named(package.mall_id, change.name) is not None:
                raise AlreadyExists(f"the mall has a package named {change.name!r}", field="package.name")
            package.name = change.name
        if change.remark is not None:
            package.remark = change.remark
        if change.category_id is not None:
            category = await _category(repo, change.category_id, caller, "package.category_id")
            if category.mall_id != package.mall_id:
                raise InvalidArgument("the category belongs to another mall", field="package.category_id")
            package.category_id = category.id
        now = self.clock()
        if change.definition is not None:
            await translate(session, package.mall_id, change.definition, self.clock(), "package.definition")
            package.definition = change.definition.SerializeToString(deterministic=True)
            package.status, package.refresh_requested_at, package.next_attempt_at = \
                pb.PACKAGE_STATUS_UPDATING, now, now
            package.attempts = 0
        package.editor_id, package.updated_at = caller.staff_id, now
        await session.flush()
        return pb.UpdatePackageResponse(package=package_to_proto(package))

    @idempotent("DeletePackage")
    async def delete_package(self, session: AsyncSession, request: pb.DeletePackageRequest, caller: Caller,
                             package_id: int) -> pb.DeletePackageResponse:
        repo = CrowdRepository(session)
        package = await _package(repo, package_id, caller)
        response = pb.DeletePackageResponse(package=package_to_proto(package))
        await repo.delete(package)
        return response

    async def package(self, caller: Caller, package_id: int) -> CrowdPackage:
        async with self.db.read() as session:
            return await _package(CrowdRepository(session), package_id, caller)

    async def packages(self, limit: int, after_id: int, mall_id: int | None,
                       category_id: int | None) -> Page[CrowdPackage]:
        async with self.db.read() as session:
            repo = CrowdRepository(session)
            return await keyset_page(lambda n: repo.packages(n, after_id, mall_id, category_id), limit)

    async def preview(self, mall_id: int, definition: crowd_pb2.CrowdDefinition, now: datetime) -> int:
        """How many members ``definition`` holds in the mall now (nothing saved)."""
        async with self.db.read() as session:
            await _mall(CrowdRepository(session), mall_id)
            translation = await translate(session, mall_id, definition, now)
        return await self.index.count(translation)

    async def refresh_package(self, request: pb.RefreshPackageRequest, caller: Caller,
                              package_id: int) -> pb.RefreshPackageResponse:
        response = await self._refresh_package(request, caller, package_id)
        self.refresher.wake()
        return response

    @idempotent("RefreshPackage")
    async def _refresh_package(self, session: AsyncSession, request: pb.RefreshPackageRequest, caller: Caller,
                               package_id: int) -> pb.RefreshPackageResponse:
        package = await _package(CrowdRepository(session), package_id, caller)
        now = self.clock()
        if package.refresh_requested_at is None:
            package.refresh_requested_at = package.next_attempt_at = now
            package.attempts = 0
        else:
            package.next_attempt_at = now  # a failed one is retried now
        package.status = pb.PACKAGE_STATUS_UPDATING
        await session.flush()
        return pb.RefreshPackageResponse(package=package_to_proto(package))

    async def members(self, caller: Caller, package_id: int, offset: int, limit: int, *,
                      with_views: bool = True) -> PackageMembers:
        """The members at ``offset``.. of the package's computed result (``limit`` of them)."""
        async with self.db.read() as session:
            package = await _package(CrowdRepository(session), package_id, caller)
            if package.result is None:
                raise FailedPrecondition("the package has not been computed yet", field="package_id")
            result = se.Bitmap.deserialize(package.result)
            ids = [int(i) for i in result.page(offset, limit)]
            repo = MemberRepository(session)
            rows = {c.id: c for c in await repo.customers(ids)}
            stats = await repo.stats_of(ids)
            tags = await repo.tags_of(ids) if with_views else {}
            malls = await repo.interactions_of(ids) if with_views else {}
            zone = (await MallZones.read(session)).of(package.mall_id)
        return PackageMembers(ids, rows, tags, stats, malls, len(result), zone)

