"""Queries over uploaded files, import jobs and their row issues."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.classification.models import Tag
from services.customer.imports.models import ImportFile, ImportJob, ImportRowIssue


class ImportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def file(self, file_id: int) -> ImportFile | None:
        return await self.session.get(ImportFile, file_id)

    async def file_by_request(self, request_id: str) -> ImportFile | None:
        return await self.session.scalar(select(ImportFile).where(ImportFile.request_id == request_id))

    async def job(self, job_id: int) -> ImportJob | None:
        return await self.session.get(ImportJob, job_id)

    async def add_job(self, job: ImportJob) -> None:
        self.session.add(job)
        await self.session.flush()

    async def tag(self, tag_id: int) -> Tag | None:
        return await self.session.get(Tag, tag_id)

    async def jobs(self, limit: int, before: int | None) -> Sequence[ImportJob]:
        """Up to ``limit`` jobs, newest first, below job ``before`` if given."""
        query = select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)
        if before is not None:
            query = query.where(ImportJob.id < before)
        return (await self.session.scalars(query)).all()

    async def issues(self, job_id: int, limit: int, after: int | None) -> Sequence[ImportRowIssue]:
        """Up to ``limit`` of a job's row issues in row order (issues are written batch by batch in row order,
        so id order is row order), after issue ``after`` if given."""
        query = select(ImportRowIssue).where(ImportRowIssue.job_id == job_id).order_by(ImportRowIssue.id) \
            .limit(limit)
        if after is not None:
            query = query.where(ImportRowIssue.id > after)
        return (await self.session.scalars(query)).all()
