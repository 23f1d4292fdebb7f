"""Malls, stores and staff rows to their messages."""

from __future__ import annotations

from crowdpack.customer.v1 import organization_service_pb2 as pb
from services.common.validation import enum_of, to_timestamp
from services.customer.organization.models import Mall, Staff, Store


def mall_to_proto(mall: Mall) -> pb.Mall:
    return pb.Mall(mall_id=str(mall.id), name=mall.name, timezone=mall.timezone,
                   create_time=to_timestamp(mall.created_at))


def store_to_proto(store: Store) -> pb.Store:
    return pb.Store(store_id=str(store.id), mall_id=str(store.mall_id), name=store.name, category=store.category,
                    business_format=store.business_format, floor=store.floor,
                    tags=[t for t in store.tags.split(",") if t], create_time=to_timestamp(store.created_at),
                    brand=store.brand)


def staff_to_proto(staff: Staff, mall_ids: list[int]) -> pb.Staff:
    return pb.Staff(staff_id=str(staff.id), name=staff.name, phone=staff.phone or "",
                    role=enum_of(pb.StaffRole, staff.role),
                    mall_ids=[str(m) for m in mall_ids], store_id=str(staff.store_id or ""),
                    disabled=staff.disabled, create_time=to_timestamp(staff.created_at))
