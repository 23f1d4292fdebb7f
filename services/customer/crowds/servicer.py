"""crowdpack.customer.v1.CrowdService: categories, packages, preview, refresh, members and downloads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import grpc
import segment_engine as se
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import crowd_pb2
from crowdpack.customer.v1 import crowd_service_pb2 as pb
from crowdpack.customer.v1 import crowd_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_pb2
from services.common.auth import Caller, Role, caller_of
from services.common.clock import utcnow
from services.common.db import Database
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.idempotency import run_idempotent
from services.common.pagination import after_id, after_token, page_size
from services.common.validation import aware, bounded_text, mask_paths, parse_int_id, to_timestamp
from services.customer.crowds.catalogue import translate
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.models import CrowdCategory, CrowdPackage
from services.customer.crowds.refresher import Refresher
from services.customer.crowds.repository import CrowdRepository
from services.customer.exports import csv_bytes
from services.customer.members.convert import member_to_proto
from services.customer.members.repository import MemberRepository
from services.customer.models import Customer, IdempotencyRecord, Mall
from services.customer.scope import require_admin, require_super_admin

EXPORT_HEADER = ["member_id", "phone", "email", "name", "real_name", "gender", "birthday", "level", "card_number",
                 "card_opened", "registration_mall_id", "disabled", "points_balance", "spend_count",
                 "spend_total_fen", "last_spend_time"]


def category_to_proto(c: CrowdCategory, packages: int = 0) -> pb.Category:
    return pb.Category(category_id=str(c.id), mall_id=str(c.mall_id), name=c.name, position=c.position,
                       is_default=c.is_default, package_count=packages)


def package_to_proto(p: CrowdPackage, *, with_result: bool = False) -> pb.Package:
    return pb.Package(
        package_id=str(p.id), mall_id=str(p.mall_id), category_id=str(p.category_id), name=p.name, remark=p.remark,
        definition=crowd_pb2.CrowdDefinition.FromString(p.definition), status=p.status, member_count=p.member_count,
        compute_time=to_timestamp(p.computed_at), failure_reason=p.failure_reason, creator_id=p.creator_id,
        editor_id=p.editor_id, create_time=to_timestamp(p.created_at), update_time=to_timestamp(p.updated_at),
        result_bitmap=(p.result or b"") if with_result else b"")


def check_mall_scope(caller: Caller, mall_id: int) -> None:
    require_admin(caller, "managing crowd packages")
    if caller.role == Role.MALL_ADMIN and str(mall_id) not in caller.mall_ids:
        raise PermissionDenied(f"mall {mall_id} is not one of your malls")


def required(value: str, field: str, maximum: int) -> str:
    value = bounded_text(value, field, maximum)
    if not value:
        raise InvalidArgument("is required", field=field)
    return value


class CrowdServicer(pb_grpc.CrowdServiceServicer):
    def __init__(self, db: Database, index: CrowdIndex, refresher: Refresher, export_max_rows: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.index = index
        self.refresher = refresher
        self.export_max_rows = export_max_rows
        self.clock = clock

    async def _mall(self, session: AsyncSession, mall_id: int, field: str = "mall_id") -> Mall:
        mall = await session.get(Mall, mall_id)
        if mall is None:
            raise NotFound(f"no mall {mall_id}", field=field)
        return mall

    async def _category(self, session: AsyncSession, category_id: int, caller: Caller,
                        field: str = "category_id") -> CrowdCategory:
        category = await CrowdRepository(session).category(category_id)
        if category is None:
            raise NotFound(f"no category {category_id}", field=field)
        check_mall_scope(caller, category.mall_id)
        return category

    async def _package(self, session: AsyncSession, package_id: int, caller: Caller,
                       field: str = "package_id") -> CrowdPackage:
        package = await CrowdRepository(session).package(package_id)
        if package is None:
            raise NotFound(f"no crowd package {package_id}", field=field)
        check_mall_scope(caller, package.mall_id)
        return package

    # --- categories

    async def CreateCategory(self, request: pb.CreateCategoryRequest,
                             context: grpc.aio.ServicerContext) -> pb.CreateCategoryResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        name = required(request.name, "name", 50)

        async def create(session: AsyncSession) -> pb.CreateCategoryResponse:
            await self._mall(session, mall_id)
            repo = CrowdRepository(session)
            await repo.default_category(mall_id)
            if await repo.category_named(mall_id, name) is not None:
                raise AlreadyExists(f"the mall has a category named {name!r}", field="name")
            category = CrowdCategory(mall_id=mall_id, name=name, position=await repo.next_position(mall_id),
                                     is_default=False, created_at=utcnow())
            session.add(category)
            await session.flush()
            return pb.CreateCategoryResponse(category=category_to_proto(category))

        return await run_idempotent(self.db, IdempotencyRecord, "CreateCategory", request, pb.CreateCategoryResponse,
                                    create)

    async def RenameCategory(self, request: pb.RenameCategoryRequest,
                             context: grpc.aio.ServicerContext) -> pb.RenameCategoryResponse:
        caller = caller_of(context)
        category_id = parse_int_id(request.category_id, "category_id")
        name = required(request.name, "name", 50)

        async def rename(session: AsyncSession) -> pb.RenameCategoryResponse:
            category = await self._category(session, category_id, caller)
            if category.is_default:
                raise FailedPrecondition("the uncategorised category keeps its name", field="category_id")
            other = await CrowdRepository(session).category_named(category.mall_id, name)
            if other is not None and other.id != category.id:
                raise AlreadyExists(f"the mall has a category named {name!r}", field="name")
            category.name = name
            await session.flush()
            return pb.RenameCategoryResponse(category=category_to_proto(category))

        return await run_idempotent(self.db, IdempotencyRecord, "RenameCategory", request, pb.RenameCategoryResponse,
                                    rename)

    async def ReorderCategories(self, request: pb.ReorderCategoriesRequest,
                                context: grpc.aio.ServicerContext) -> pb.ReorderCategoriesResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        order = [parse_int_id(c, "category_ids") for c in request.category_ids]

        async def reorder(session: AsyncSession) -> pb.ReorderCategoriesResponse:
            await self._mall(session, mall_id)
            categories = {c.id: c for c in await CrowdRepository(session).categories(mall_id)}
            if sorted(order) != sorted(categories):
                raise InvalidArgument("must list every category of the mall exactly once", field="category_ids")
            for position, category_id in enumerate(order):
                categories[category_id].position = position
            await session.flush()
            return pb.ReorderCategoriesResponse(categories=[category_to_proto(categories[c]) for c in order])

        return await run_idempotent(self.db, IdempotencyRecord, "ReorderCategories", request,
                                    pb.ReorderCategoriesResponse, reorder)

    async def DeleteCategory(self, request: pb.DeleteCategoryRequest,
                             context: grpc.aio.ServicerContext) -> pb.DeleteCategoryResponse:
        caller = caller_of(context)
        category_id = parse_int_id(request.category_id, "category_id")

        async def delete(session: AsyncSession) -> pb.DeleteCategoryResponse:
            category = await self._category(session, category_id, caller)
            if category.is_default:
                raise FailedPrecondition("the uncategorised category cannot be deleted", field="category_id")
            repo = CrowdRepository(session)
            fallback = await repo.default_category(category.mall_id)
            await repo.move_packages(category.id, fallback.id)
            response = pb.DeleteCategoryResponse(category=category_to_proto(category))
            await session.delete(category)
            return response

        return await run_idempotent(self.db, IdempotencyRecord, "DeleteCategory", request, pb.DeleteCategoryResponse,
                                    delete)

    async def ListCategories(self, request: pb.ListCategoriesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListCategoriesResponse:
        mall_id = parse_int_id(request.mall_id, "mall_id")
        limit = page_size(request.page_size, default=1000)
        start = after_id(request.page_token)
        # The default category is created on first use, so this read may write once.
        async with self.db.transaction() as session:
            await self._mall(session, mall_id)
            repo = CrowdRepository(session)
            categories = list(await repo.categories(mall_id))
            counts = await repo.package_counts([c.id for c in categories])
        page = categories[start:start + limit]
        token = after_token(start + limit) if len(categories) > start + limit else ""
        return pb.ListCategoriesResponse(categories=[category_to_proto(c, counts.get(c.id, 0)) for c in page],
                                         next_page_token=token)

    # --- packages

    async def _validated(self, session: AsyncSession, mall_id: int, definition: crowd_pb2.CrowdDefinition,
                         where: str) -> None:
        await translate(session, mall_id, definition, self.clock(), where)

    async def CreatePackage(self, request: pb.CreatePackageRequest,
                            context: grpc.aio.ServicerContext) -> pb.CreatePackageResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        name = required(request.name, "name", 100)
        remark = bounded_text(request.remark, "remark", 500)
        category_id = parse_int_id(request.category_id, "category_id") if request.category_id else None

        async def create(session: AsyncSession) -> pb.CreatePackageResponse:
            await self._mall(session, mall_id)
            repo = CrowdRepository(session)
            if category_id is None:
                category = await repo.default_category(mall_id)
            else:
                category = await self._category(session, category_id, caller)
                if category.mall_id != mall_id:
                    raise InvalidArgument(f"category {category_id} belongs to another mall", field="category_id")
            if await repo.package_named(mall_id, name) is not None:
                raise AlreadyExists(f"the mall has a package named {name!r}", field="name")
            await self._validated(session, mall_id, request.definition, "definition")
            now = utcnow()
            package = CrowdPackage(mall_id=mall_id, category_id=category.id, name=name, remark=remark,
                                   definition=request.definition.SerializeToString(deterministic=True),
                                   status=pb.PACKAGE_STATUS_UPDATING, member_count=0, failure_reason="",
                                   refresh_requested_at=now, next_attempt_at=now, attempts=0,
                                   creator_id=caller.staff_id, editor_id=caller.staff_id, created_at=now,
                                   updated_at=now)
            session.add(package)
            await session.flush()
            return pb.CreatePackageResponse(package=package_to_proto(package))

        response = await run_idempotent(self.db, IdempotencyRecord, "CreatePackage", request,
                                        pb.CreatePackageResponse, create)
        self.refresher.wake()
        return response

    async def UpdatePackage(self, request: pb.UpdatePackageRequest,
                            context: grpc.aio.ServicerContext) -> pb.UpdatePackageResponse:
        caller = caller_of(context)
        package_id = parse_int_id(request.package.package_id, "package.package_id")
        paths = set(mask_paths(request.update_mask, {"name", "remark", "category_id", "definition"}))
        p = request.package
        name = required(p.name, "package.name", 100) if "name" in paths else None
        remark = bounded_text(p.remark, "package.remark", 500) if "remark" in paths else None
        category_id = parse_int_id(p.category_id, "package.category_id") if "category_id" in paths else None

        async def edit(session: AsyncSession) -> pb.UpdatePackageResponse:
            package = await self._package(session, package_id, caller, "package.package_id")
            if package.status == pb.PACKAGE_STATUS_UPDATING:
                raise FailedPrecondition("the package is being computed; try again when it is ready",
                                         field="package.package_id")
            repo = CrowdRepository(session)
            if name is not None and name != package.name:
                if await repo.package_named(package.mall_id, name) is not None:
                    raise AlreadyExists(f"the mall has a package named {name!r}", field="package.name")
                package.name = name
            if remark is not None:
                package.remark = remark
            if category_id is not None:
                category = await self._category(session, category_id, caller, "package.category_id")
                if category.mall_id != package.mall_id:
                    raise InvalidArgument("the category belongs to another mall", field="package.category_id")
                package.category_id = category.id
            now = utcnow()
            if "definition" in paths:
                await self._validated(session, package.mall_id, p.definition, "package.definition")
                package.definition = p.definition.SerializeToString(deterministic=True)
                package.status, package.refresh_requested_at, package.next_attempt_at = \
                    pb.PACKAGE_STATUS_UPDATING, now, now
                package.attempts = 0
            package.editor_id, package.updated_at = caller.staff_id, now
            await session.flush()
            return pb.UpdatePackageResponse(package=package_to_proto(package))

        response = await run_idempotent(self.db, IdempotencyRecord, "UpdatePackage", request,
                                        pb.UpdatePackageResponse, edit)
        self.refresher.wake()
        return response

    async def DeletePackage(self, request: pb.DeletePackageRequest,
                            context: grpc.aio.ServicerContext) -> pb.DeletePackageResponse:
        caller = caller_of(context)
        package_id = parse_int_id(request.package_id, "package_id")

        async def delete(session: AsyncSession) -> pb.DeletePackageResponse:
            package = await self._package(session, package_id, caller)
            response = pb.DeletePackageResponse(package=package_to_proto(package))
            await session.delete(package)
            return response

        return await run_idempotent(self.db, IdempotencyRecord, "DeletePackage", request, pb.DeletePackageResponse,
                                    delete)

    async def GetPackage(self, request: pb.GetPackageRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetPackageResponse:
        package_id = parse_int_id(request.package_id, "package_id")
        async with self.db.read() as session:
            package = await self._package(session, package_id, caller_of(context))
        return pb.GetPackageResponse(package=package_to_proto(package, with_result=True))

    async def ListPackages(self, request: pb.ListPackagesRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListPackagesResponse:
        caller = caller_of(context)
        limit = page_size(request.page_size)
        mall_id = parse_int_id(request.mall_id, "mall_id") if request.mall_id else None
        category_id = parse_int_id(request.category_id, "category_id") if request.category_id else None
        if mall_id is not None:
            check_mall_scope(caller, mall_id)
        elif caller.role == Role.MALL_ADMIN:
            raise InvalidArgument("a mall admin lists the packages of one of their malls", field="mall_id")
        else:
            require_admin(caller, "listing crowd packages")
        async with self.db.read() as session:
            rows = await CrowdRepository(session).packages(limit + 1, after_id(request.page_token), mall_id,
                                                           category_id)
        token = after_token(rows[limit - 1].id) if len(rows) > limit else ""
        return pb.ListPackagesResponse(packages=[package_to_proto(p) for p in rows[:limit]], next_page_token=token)

    async def PreviewPackage(self, request: pb.PreviewPackageRequest,
                             context: grpc.aio.ServicerContext) -> pb.PreviewPackageResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        now = self.clock()
        async with self.db.read() as session:
            await self._mall(session, mall_id)
            translation = await translate(session, mall_id, request.definition, now)
        count = await self.index.count(translation)
        return pb.PreviewPackageResponse(member_count=count, compute_time=to_timestamp(now))

    async def RefreshPackage(self, request: pb.RefreshPackageRequest,
                             context: grpc.aio.ServicerContext) -> pb.RefreshPackageResponse:
        caller = caller_of(context)
        package_id = parse_int_id(request.package_id, "package_id")

        async def refresh(session: AsyncSession) -> pb.RefreshPackageResponse:
            package = await self._package(session, package_id, caller)
            now = utcnow()
            if package.refresh_requested_at is None:
                package.refresh_requested_at = package.next_attempt_at = now
                package.attempts = 0
            else:
                package.next_attempt_at = now  # a failed one is retried now
            package.status = pb.PACKAGE_STATUS_UPDATING
            await session.flush()
            return pb.RefreshPackageResponse(package=package_to_proto(package))

        response = await run_idempotent(self.db, IdempotencyRecord, "RefreshPackage", request,
                                        pb.RefreshPackageResponse, refresh)
        self.refresher.wake()
        return response

    async def _result(self, session: AsyncSession, package_id: int, caller: Caller) -> se.Bitmap:
        package = await self._package(session, package_id, caller)
        if package.result is None:
            raise FailedPrecondition("the package has not been computed yet", field="package_id")
        return se.Bitmap.deserialize(package.result)

    async def ListPackageMembers(self, request: pb.ListPackageMembersRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ListPackageMembersResponse:
        package_id = parse_int_id(request.package_id, "package_id")
        limit = page_size(request.page_size)
        offset = after_id(request.page_token)
        async with self.db.read() as session:
            result = await self._result(session, package_id, caller_of(context))
            ids = [int(i) for i in result.page(offset, limit)]
            repo = MemberRepository(session)
            rows = {c.id: c for c in (await session.scalars(select(Customer).where(Customer.id.in_(ids)))).all()}
            tags, stats, malls = await repo.tags_of(ids), await repo.stats_of(ids), await repo.interactions_of(ids)
        members = [member_to_proto(rows[i], tags=tags.get(i, []), stats=stats.get(i),
                                   interaction_mall_ids=malls.get(i, [])) for i in ids if i in rows]
        token = after_token(offset + limit) if len(result) > offset + limit else ""
        return pb.ListPackageMembersResponse(members=members, next_page_token=token, total_size=len(result))

    async def ExportPackageMembers(self, request: pb.ExportPackageMembersRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ExportPackageMembersResponse:
        caller = caller_of(context)
        require_super_admin(caller, "downloading members")
        package_id = parse_int_id(request.package_id, "package_id")
        if request.max_rows < 0:
            raise InvalidArgument("must not be negative", field="max_rows")
        cap = min(request.max_rows or self.export_max_rows, self.export_max_rows)
        async with self.db.read() as session:
            result = await self._result(session, package_id, caller)
            ids = [int(i) for i in result.page(0, cap)]
            rows = {c.id: c for c in (await session.scalars(select(Customer).where(Customer.id.in_(ids)))).all()}
            stats = await MemberRepository(session).stats_of(ids)
        lines = []
        for i in ids:
            c, s = rows[i], stats.get(i)
            lines.append([c.id, c.phone, c.email, c.name, c.real_name, member_pb2.Gender.Name(c.gender),
                          c.birthday.isoformat() if c.birthday else "", c.level, c.card_number, int(c.card_opened),
                          c.registration_mall_id, int(c.disabled), s.points_balance if s else 0,
                          s.spend_count if s else 0, s.spend_total_fen if s else 0,
                          aware(s.last_spend_at).isoformat() if s and s.last_spend_at else ""])
        return pb.ExportPackageMembersResponse(csv=csv_bytes(EXPORT_HEADER, lines), row_count=len(lines),
                                               truncated=len(result) > cap)
