"""crowdpack.customer.v1.CrowdService: categories, packages, preview, refresh, members and downloads."""

from __future__ import annotations

import grpc

from crowdpack.customer.v1 import crowd_service_pb2 as pb
from crowdpack.customer.v1 import crowd_service_pb2_grpc as pb_grpc
from services.common.auth import Role, caller_of
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.downloads import csv_download, local_time, yes_no
from services.common.errors import InvalidArgument
from services.common.pagination import after_id, after_token, page_size
from services.common.validation import bounded_text, mask_paths, optional_id, parse_int_id, to_timestamp
from services.customer.crowds.convert import category_to_proto, package_to_proto
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.refresher import Refresher
from services.customer.crowds.service import CrowdService, PackageChange, check_mall_scope
from services.customer.exports import gender_text
from services.customer.members.convert import member_to_proto
from services.customer.scope import require_admin, require_super_admin

EXPORT_HEADER = ["会员编号", "手机号", "邮箱", "姓名", "真实姓名", "性别", "生日", "等级", "会员卡号", "已开卡",
                 "注册商场", "已禁用", "积分余额", "消费次数", "消费总额(分)", "最近消费时间"]


def required(value: str, field: str, maximum: int) -> str:
    value = bounded_text(value, field, maximum)
    if not value:
        raise InvalidArgument("is required", field=field)
    return value


class CrowdServicer(pb_grpc.CrowdServiceServicer):
    def __init__(self, db: Database, index: CrowdIndex, refresher: Refresher, export_max_rows: int,
                 clock: Clock = utcnow) -> None:
        self.service = CrowdService(db, index, refresher, clock)
        self.export_max_rows = export_max_rows
        self.clock = clock

    # --- categories

    async def CreateCategory(self, request: pb.CreateCategoryRequest,
                             context: grpc.aio.ServicerContext) -> pb.CreateCategoryResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        name = required(request.name, "name", 50)
        return await self.service.create_category(request, mall_id, name)

    async def RenameCategory(self, request: pb.RenameCategoryRequest,
                             context: grpc.aio.ServicerContext) -> pb.RenameCategoryResponse:
        caller = caller_of(context)
        category_id = parse_int_id(request.category_id, "category_id")
        name = required(request.name, "name", 50)
        return await self.service.rename_category(request, caller, category_id, name)

    async def ReorderCategories(self, request: pb.ReorderCategoriesRequest,
                                context: grpc.aio.ServicerContext) -> pb.ReorderCategoriesResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        order = [parse_int_id(c, "category_ids") for c in request.category_ids]
        return await self.service.reorder_categories(request, mall_id, order)

    async def DeleteCategory(self, request: pb.DeleteCategoryRequest,
                             context: grpc.aio.ServicerContext) -> pb.DeleteCategoryResponse:
        caller = caller_of(context)
        return await self.service.delete_category(request, caller, parse_int_id(request.category_id, "category_id"))

    async def ListCategories(self, request: pb.ListCategoriesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListCategoriesResponse:
        mall_id = parse_int_id(request.mall_id, "mall_id")
        limit = page_size(request.page_size, default=1000)
        start = after_id(request.page_token)
        categories, counts = await self.service.categories(mall_id)
        page = categories[start:start + limit]
        token = after_token(start + limit) if len(categories) > start + limit else ""
        return pb.ListCategoriesResponse(categories=[category_to_proto(c, counts.get(c.id, 0)) for c in page],
                                         next_page_token=token)

    # --- packages

    async def CreatePackage(self, request: pb.CreatePackageRequest,
                            context: grpc.aio.ServicerContext) -> pb.CreatePackageResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        name = required(request.name, "name", 100)
        remark = bounded_text(request.remark, "remark", 500)
        category_id = optional_id(request.category_id, "category_id")
        return await self.service.create_package(request, caller, mall_id, name, remark, category_id)

    async def UpdatePackage(self, request: pb.UpdatePackageRequest,
                            context: grpc.aio.ServicerContext) -> pb.UpdatePackageResponse:
        caller = caller_of(context)
        package_id = parse_int_id(request.package.package_id, "package.package_id")
        paths = set(mask_paths(request.update_mask, {"name", "remark", "category_id", "definition"}))
        p = request.package
        change = PackageChange(
            name=required(p.name, "package.name", 100) if "name" in paths else None,
            remark=bounded_text(p.remark, "package.remark", 500) if "remark" in paths else None,
            category_id=parse_int_id(p.category_id, "package.category_id") if "category_id" in paths else None,
            definition=p.definition if "definition" in paths else None)
        return await self.service.update_package(request, caller, package_id, change)

    async def DeletePackage(self, request: pb.DeletePackageRequest,
                            context: grpc.aio.ServicerContext) -> pb.DeletePackageResponse:
        caller = caller_of(context)
        return await self.service.delete_package(request, caller, parse_int_id(request.package_id, "package_id"))

    async def GetPackage(self, request: pb.GetPackageRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetPackageResponse:
        package_id = parse_int_id(request.package_id, "package_id")
        package = await self.service.package(caller_of(context), package_id)
        return pb.GetPackageResponse(package=package_to_proto(package, with_result=True))

    async def ListPackages(self, request: pb.ListPackagesRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListPackagesResponse:
        caller = caller_of(context)
        limit = page_size(request.page_size)
        mall_id = optional_id(request.mall_id, "mall_id")
        category_id = optional_id(request.category_id, "category_id")
        if mall_id is not None:
            check_mall_scope(caller, mall_id)
        elif caller.role == Role.MALL_ADMIN:
            raise InvalidArgument("a mall admin lists the packages of one of their malls", field="mall_id")
        else:
            require_admin(caller, "listing crowd packages")
        page = await self.service.packages(limit, after_id(request.page_token), mall_id, category_id)
        return pb.ListPackagesResponse(packages=[package_to_proto(p) for p in page.items],
                                       next_page_token=page.next_token(lambda p: {"after": p.id}))

    async def PreviewPackage(self, request: pb.PreviewPackageRequest,
                             context: grpc.aio.ServicerContext) -> pb.PreviewPackageResponse:
        caller = caller_of(context)
        mall_id = parse_int_id(request.mall_id, "mall_id")
        check_mall_scope(caller, mall_id)
        now = self.clock()
        count = await self.service.preview(mall_id, request.definition, now)
        return pb.PreviewPackageResponse(member_count=count, compute_time=to_timestamp(now))

    async def RefreshPackage(self, request: pb.RefreshPackageRequest,
                             context: grpc.aio.ServicerContext) -> pb.RefreshPackageResponse:
        caller = caller_of(context)
        return await self.service.refresh_package(request, caller, parse_int_id(request.package_id, "package_id"))

    async def ListPackageMembers(self, request: pb.ListPackageMembersRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ListPackageMembersResponse:
        package_id = parse_int_id(request.package_id, "package_id")
        limit = page_size(request.page_size)
        offset = after_id(request.page_token)
        found = await self.service.members(caller_of(context), package_id, offset, limit)
        members = [member_to_proto(found.rows[i], tags=found.tags.get(i, []), stats=found.stats.get(i),
                                   interaction_mall_ids=found.malls.get(i, [])) for i in found.ids if i in found.rows]
        token = after_token(offset + limit) if found.total > offset + limit else ""
        return pb.ListPackageMembersResponse(members=members, next_page_token=token, total_size=found.total)

    async def ExportPackageMembers(self, request: pb.ExportPackageMembersRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ExportPackageMembersResponse:
        caller = caller_of(context)
        require_super_admin(caller, "downloading members")
        package_id = parse_int_id(request.package_id, "package_id")
        if request.max_rows < 0:
            raise InvalidArgument("must not be negative", field="max_rows")
        cap = min(request.max_rows or self.export_max_rows, self.export_max_rows)
        found = await self.service.members(caller, package_id, 0, cap, with_views=False)
        lines = []
        for i in found.ids:
            c, s = found.rows[i], found.stats.get(i)
            lines.append([c.id, c.phone, c.email, c.name, c.real_name, gender_text(c.gender),
                          c.birthday.isoformat() if c.birthday else "", c.level, c.card_number, yes_no(c.card_opened),
                          c.registration_mall_id, yes_no(c.disabled), s.points_balance if s else 0,
                          s.spend_count if s else 0, s.spend_total_fen if s else 0,
                          local_time(s.last_spend_at, found.zone) if s else ""])
        return pb.ExportPackageMembersResponse(csv=csv_download(EXPORT_HEADER, lines), row_count=len(lines),
                                               truncated=found.total > cap)
