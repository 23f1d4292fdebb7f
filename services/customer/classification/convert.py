"""Rows to crowdpack.customer.v1 classification messages."""

from __future__ import annotations

from crowdpack.customer.v1 import classification_service_pb2 as pb
from services.common.validation import to_timestamp
from services.customer.classification.models import CustomerGroup, Tag

DEFAULT_GROUP_ID = "default"
DEFAULT_GROUP_NAME = "默认分组"  # the documents' word for the default group


def tag_to_proto(tag: Tag, customer_count: int = 0) -> pb.Tag:
    return pb.Tag(tag_id=str(tag.id), name=tag.name, predefined=tag.predefined, customer_count=customer_count,
                  create_time=to_timestamp(tag.created_at))


def group_to_proto(group: CustomerGroup | None, customer_count: int = 0) -> pb.CustomerGroup:
    """``None`` is the default group."""
    if group is None:
        return pb.CustomerGroup(group_id=DEFAULT_GROUP_ID, name=DEFAULT_GROUP_NAME, is_default=True,
                                customer_count=customer_count)
    return pb.CustomerGroup(group_id=str(group.id), name=group.name, customer_count=customer_count,
                            create_time=to_timestamp(group.created_at))
