"""Reason templates: the reasons the manual adjustment dialog offers (create, read, update, delete).

A template belongs to one asset, or to every asset when its asset is unspecified. Names are
unique among the live templates one dialog offers (an asset's own and those for every asset).
Deleting only hides a template: entries keep the reason text they were posted with.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.ledger.models import ReasonTemplate

MAX_NAME = 100


def template_name(value: str, field: str = "name") -> str:
    name = value.strip()
    if not name:
        raise InvalidArgument("is required", field=field)
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"must be at most {MAX_NAME} characters", field=field)
    return name


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live(self, template_id: int, field: str = "reason_template_id") -> ReasonTemplate:
        template = await self.session.get(ReasonTemplate, template_id)
        if template is None or template.deleted_at is not None:
            raise NotFound(f"no reason template {template_id}", field=field)
        return template

    async def name_taken(self, asset: int, name: str, *, except_id: int | None = None) -> bool:
        """Whether a live template the same dialog would offer already has this name."""
        query = select(ReasonTemplate.id).where(ReasonTemplate.name == name, ReasonTemplate.deleted_at.is_(None))
        if asset != pb.ASSET_UNSPECIFIED:
            query = query.where(or_(ReasonTemplate.asset == asset, ReasonTemplate.asset == pb.ASSET_UNSPECIFIED))
        if except_id is not None:
            query = query.where(ReasonTemplate.id != except_id)
        return await self.session.scalar(query.limit(1)) is not None

    async def page(self, limit: int, before_id: int | None, asset: int) -> Sequence[ReasonTemplate]:
        """Live templates, newest first; for an asset, its own and those offered for every asset."""
        query = select(ReasonTemplate).where(ReasonTemplate.deleted_at.is_(None)).order_by(ReasonTemplate.id.desc())
        if asset:
            query = query.where(or_(ReasonTemplate.asset == asset, ReasonTemplate.asset == pb.ASSET_UNSPECIFIED))
        if before_id is not None:
            query = query.where(ReasonTemplate.id < before_id)
        return (await self.session.scalars(query.limit(limit))).all()

    async def create(self, asset: int, name: str, operator_id: str, now: datetime) -> ReasonTemplate:
        if await self.name_taken(asset, name):
            raise AlreadyExists(f"a reason template named {name!r} is already offered for this asset", field="name")
        template = ReasonTemplate(asset=asset, name=name, operator_id=operator_id, created_at=now, updated_at=now)
        self.session.add(template)
        await self.session.flush()
        return template

    async def rename(self, template_id: int, name: str, operator_id: str, now: datetime) -> ReasonTemplate:
        template = await self.live(template_id)
        if await self.name_taken(template.asset, name, except_id=template.id):
            raise AlreadyExists(f"a reason template named {name!r} is already offered for this asset", field="name")
        template.name = name
        template.operator_id = operator_id
        template.updated_at = now
        await self.session.flush()
        return template

    async def delete(self, template_id: int, operator_id: str, now: datetime) -> ReasonTemplate:
        template = await self.live(template_id)
        template.deleted_at = now
        template.updated_at = now
        template.operator_id = operator_id
        await self.session.flush()
        return template
