"""Applies one batch of checked business customer rows in the caller's transaction.

Row by row, as the RPCs would: a row with a code updates the live customer holding it; a row without
one updates the one live customer of that exact name, or creates a customer (generated code, computed
grade, the importing operator as creator and, unless the row names one, as owner). Changes go through
``business.changes`` (timeline entries, the grade recomputed); an owner the row names that differs from
the current one is an administrator's transfer (``ownership.transfer``: recorded, announced, applied at
once, pending applications closed). Skipped rows, counts and progress are recorded as the member import
records them (``writer.move_progress``, ``writer.record_outcome``); the job's tag goes on every created or
updated customer with its events (``tagging.add_tags``).

Conflicts with stored data are row issues: an unknown code, a name several live customers share, a
phone or email another customer holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.business import changes
from services.customer.business.ownership import supersede_applications, transfer
from services.customer.business.repository import BusinessRepository, BusinessRow
from services.customer.classification import tagging
from services.customer.imports.plan import JobContext, Outcome
from services.customer.imports.rows import CONFLICT, DUPLICATE, OK, RowResult
from services.customer.imports.writer import move_progress, record_outcome
from services.customer.imports.writes import Driver
from services.customer.models import Customer


class Conflict(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


class BusinessBatchWriter:
    def __init__(self, session: AsyncSession, ctx: JobContext) -> None:
        self.session = session
        self.ctx = ctx
        self.repo = BusinessRepository(session)
        self.out = Outcome()
        self.issues: list[tuple[Any, ...]] = []

    def _issue(self, row: RowResult, status: int, field: str, reason: str) -> None:
        self.issues.append((self.ctx.job_id, row.number, status, field[:40], reason[:300]))
        if status == CONFLICT:
            self.out.conflict += 1
        elif status == DUPLICATE:
            self.out.duplicate += 1
        else:
            self.out.invalid += 1

    async def _target(self, code: str | None, name: str | None) -> BusinessRow | None:
        if code is not None:
            row = await self.repo.by_code(code)
            if row is None:
                raise Conflict("code", f"code: no business customer has code {code} (codes are generated; "
                                       "leave it empty to create a customer)")
            return row
        assert name is not None
        named = await self.repo.named(name)
        if len(named) > 1:
            raise Conflict("name", f"name: several business customers are called {name!r}; give the customer code")
        return named[0] if named else None

    async def _check_unique(self, values: dict[str, Any], customer_id: int | None) -> None:
        for column, name in ((Customer.phone, "phone"), (Customer.email, "email")):
            value = values.get(name)
            if value:
                held = await self.repo.holder_by(column, value)
                if held is not None and held[0] != customer_id:
                    raise Conflict(name, f"{name}: another customer has this {name}")

    async def _row(self, row: RowResult, now: datetime) -> int:
        """Writes one row; returns the customer's id."""
        assert row.values is not None
        values = dict(row.values)
        code, owner = values.pop("code", None), values.pop("owner_staff_id", None)
        target = await self._target(code, values.get("name"))
        await self._check_unique(values, target.customer.id if target else None)
        actor = self.ctx.operator_id
        if target is None:
            created = await changes.create(self.session, values, owner or actor, actor, now,
                                           import_job_id=str(self.ctx.job_id))
            self.out.created += 1
            return created.customer.id
        changed = await changes.change(self.session, target, values, actor, now)
        moved = owner is not None and owner != target.profile.owner_staff_id
        if moved:
            assert owner is not None
            await transfer(self.session, target, owner, actor, f"import job {self.ctx.job_id}", now)
            await supersede_applications(self.session, [target.customer.id], actor, now)
        if changed or moved:
            self.out.updated += 1
        else:
            self.out.unchanged += 1
        return target.customer.id

    async def apply(self, rows: Sequence[RowResult], before: int, after: int, now: datetime) -> Outcome:
        """Writes ``rows`` (file rows ``before``..``after`` of the job) and moves the job's progress."""
        await move_progress(self.session, self.ctx.job_id, before, after)
        written: list[int] = []
        for row in rows:
            if row.status != OK:
                self._issue(row, row.status, row.field, row.reason)
                continue
            try:  # a conflict is found before the row writes anything
                written.append(await self._row(row, now))
            except Conflict as err:
                self._issue(row, CONFLICT, err.field, err.reason)
        if self.ctx.tag is not None and written:
            await tagging.add_tags(self.session, sorted(set(written)), [self.ctx.tag], self.ctx.operator_id, now)
        await record_outcome(self.session, Driver(self.session), self.ctx.job_id, self.issues, self.out)
        return self.out
