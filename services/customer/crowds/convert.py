"""Crowd categories and packages to their messages."""

from __future__ import annotations

from crowdpack.customer.v1 import crowd_pb2
from crowdpack.customer.v1 import crowd_service_pb2 as pb
from services.common.validation import enum_of, to_timestamp
from services.customer.crowds.models import CrowdCategory, CrowdPackage


def category_to_proto(c: CrowdCategory, packages: int = 0) -> pb.Category:
    return pb.Category(category_id=str(c.id), mall_id=str(c.mall_id), name=c.name, position=c.position,
                       is_default=c.is_default, package_count=packages)


def package_to_proto(p: CrowdPackage, *, with_result: bool = False) -> pb.Package:
    return pb.Package(
        package_id=str(p.id), mall_id=str(p.mall_id), category_id=str(p.category_id), name=p.name, remark=p.remark,
        definition=crowd_pb2.CrowdDefinition.FromString(p.definition), status=enum_of(pb.PackageStatus, p.status),
        member_count=p.member_count,
        compute_time=to_timestamp(p.computed_at), failure_reason=p.failure_reason, creator_id=p.creator_id,
        editor_id=p.editor_id, create_time=to_timestamp(p.created_at), update_time=to_timestamp(p.updated_at),
        result_bitmap=(p.result or b"") if with_result else b"")
