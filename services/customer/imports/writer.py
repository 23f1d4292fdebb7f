"""Applies one batch of checked rows in the caller's transaction: the fast and the normal writer.

Both modes share the plan: look up the batch's phones, emails and card numbers in one query
each, decide per row create / update / unchanged / conflict, then write with bulk statements
(one multi-row INSERT for new members with ids allocated up front, one executemany UPDATE per
set of changed columns, ``ON CONFLICT DO NOTHING`` for tags) and every new member's zero
``customer_stats`` row. The normal writer adds, per change, what an RPC would have made: member
created/updated and card-opened events and timeline entries, and the tag-added event and entry
for each tag actually added. The fast writer adds nothing per row, only
``customer.members.imported`` events per batch naming the members it created (the ledger opens
their accounts from them) and the existing members it changed or tagged (the crowd index re-reads
every member both name). A new member's INSERT row is shaped where the row is read and checked
(``shape_rows``); the writer adds the id.

The parts live by job: ``plan.py`` (the columns, each new member's row, each row's decision),
``writes.py`` (the rows to the driver through ``services.common.bulk``) and ``import_events.py``
(what a batch announces and records); this module runs a batch through them.

The job's progress moves first, in the same transaction, guarded by the progress it expects:
a second runner on the same job finds the guard failed and stops (``Superseded``), and a
batch that does not commit leaves the progress where it was.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import import_service_pb2 as pb
from services.common.bulk import allocate_ids
from services.common.chunks import IN_LIST, chunks
from services.common.clock import utcnow
from services.common.db import dialect_of, rowcount
from services.common.mapped import table_of
from services.customer.imports.import_events import (
    created_events,
    imported_events,
    tag_events,
    update_events,
    updated_events,
)
from services.customer.imports.models import ImportJob, ImportRowIssue
from services.customer.imports.plan import (
    CARD,
    CUSTOMER,
    IMPORT_CHANNEL,
    PROFILE,
    STATE,
    JobContext,
    Outcome,
    Shape,
    insert_columns,
    plan,
    shape_rows,
)
from services.customer.imports.rows import CONFLICT, DUPLICATE, OK, RowResult
from services.customer.imports.writes import Driver, Staging
from services.customer.member_changes import changes_of
from services.customer.members.cards import card_number
from services.customer.models import CustomerInteraction

SQLITE_CACHE_KIB = 65536


def _insert(session: AsyncSession) -> Callable[[Any], postgresql.Insert] | Callable[[Any], sqlite.Insert]:
    return postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert


# The customer_stats row every member has, all zero (as stats.empty_stats makes one).
STATS_COLUMNS = ("customer_id", "points_balance", "red_packet_balance_fen", "stored_balance_fen", "spend_count",
                 "spend_total_fen", "level_spend_fen", "cumulative_spend_fen", "points_entry_id",
                 "red_packet_entry_id", "stored_entry_id", "online_count", "online_total_fen", "offline_count",
                 "offline_total_fen")


class Superseded(Exception):
    """Another runner moved this job on; this one stops."""


async def move_progress(session: AsyncSession, job_id: int, before: int, after: int) -> None:
    """Moves a running job's progress from ``before`` to ``after`` rows, in the batch's transaction;
    ``Superseded`` when another runner moved it already."""
    moved = await session.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.processed_rows == before,
                                ImportJob.state == pb.IMPORT_JOB_STATE_RUNNING)
        .values(processed_rows=after))
    if rowcount(moved) != 1:
        raise Superseded(f"import job {job_id} moved past row {before} elsewhere")


async def record_outcome(session: AsyncSession, driver: Driver, job_id: int, issues: list[tuple[Any, ...]],
                         out: Outcome) -> None:
    """Writes a batch's skipped-row report and adds its counts to the job's (the counters move with the rows
    they count)."""
    await driver.insert(table_of(ImportRowIssue), ("job_id", "row_number", "status", "field", "reason"), issues)
    await session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
        created_count=ImportJob.created_count + out.created,
        updated_count=ImportJob.updated_count + out.updated,
        unchanged_count=ImportJob.unchanged_count + out.unchanged,
        invalid_count=ImportJob.invalid_count + out.invalid,
        duplicate_count=ImportJob.duplicate_count + out.duplicate,
        conflict_count=ImportJob.conflict_count + out.conflict))


class BatchWriter:
    def __init__(self, session: AsyncSession, ctx: JobContext) -> None:
        self.session = session
        self.ctx = ctx
        self.normal = ctx.mode == pb.IMPORT_MODE_NORMAL
        self.out = Outcome()
        self.issues: list[tuple[Any, ...]] = []
        self.driver = Driver(session)
        self.staging = Staging(session)

    def _issue(self, row: RowResult, status: int, field: str, reason: str) -> None:
        self.issues.append((self.ctx.job_id, row.number, status, field[:40], reason[:300]))
        if status == CONFLICT:
            self.out.conflict += 1
        elif status == DUPLICATE:
            self.out.duplicate += 1
        else:
            self.out.invalid += 1

    async def _ids_by(self, column: str, values: list[str]) -> dict[str, int]:
        """Value -> customer id for the stored ones (straight to the driver: most values of a big import are new)."""
        found: dict[str, int] = {}
        conn = await self.session.connection()
        for chunk in chunks(values, IN_LIST):
            rows = await conn.exec_driver_sql(
                f"SELECT {column}, id FROM customer WHERE {column} IN ({self.driver.marks(len(chunk))})", tuple(chunk))
            # (value, id) pairs: SQLAlchemy cannot type the rows of a driver-level statement.
            found.update(cast("Sequence[tuple[str, int]]", rows.all()))
        return found

    async def _states(self, ids: set[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        columns = [CUSTOMER.c[name] for name in STATE]
        for chunk in chunks(sorted(ids), IN_LIST):
            for rec in (await self.session.execute(select(*columns).where(CUSTOMER.c.id.in_(chunk)))).all():
                found[rec.id] = rec
        return found

    async def apply(self, rows: Sequence[RowResult], before: int, after: int,
                    now: datetime | None = None) -> Outcome:
        """Writes ``rows`` (file rows ``before``..``after`` of the job) and moves the job's progress.

        ``now`` is the time the rows were shaped at (shape_rows), the batch's time throughout; rows not
        shaped yet are shaped here.
        """
        if now is None or any(r.status == OK and r.insert is None for r in rows):
            now = utcnow()
            shape_rows(Shape(self.ctx.reference, self.ctx.fields, self.driver.sqlite), rows, now)
        valid: list[RowResult] = []
        values: list[dict[str, Any]] = []
        for row in rows:
            if row.status == OK:
                assert row.values is not None  # a row read OK has its values
                valid.append(row)
                values.append(row.values)
            else:
                self._issue(row, row.status, row.field, row.reason)
        by_phone = await self._ids_by("phone", [v["phone"] for v in values if "phone" in v])
        by_email = await self._ids_by("email", [v["email"] for v in values if "email" in v])
        by_card = await self._ids_by("card_number", [v["card_number"] for v in values if "card_number" in v])
        existing = await self._states({*by_phone.values(), *by_email.values()})

        decided = plan(valid, by_phone, by_email, by_card, existing)
        for row, field, reason in decided.conflicts:
            self._issue(row, CONFLICT, field, reason)
        creates, updates = decided.creates, decided.updates

        await self._progress(before, after)
        if self.driver.sqlite:
            # Room for the customer indexes of a large table while batches go in (the one writer connection).
            await (await self.session.connection()).exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        created = await self._create(creates, now)
        changed = await self._update(updates, existing, now)
        await self._interactions(created, changed, existing)
        if self.normal:
            if self.ctx.tag is not None:
                await self._tag(self.created_ids + list(updates), now)
        else:
            tagged: list[int] = []
            if self.ctx.tag is not None:
                await self._add_tag(self.created_ids, now, returning=False)  # all new: no rows back needed
                tagged = await self._add_tag(list(updates), now, returning=True)
            updated_events(self.session, self.ctx, sorted(changed.keys() | set(tagged)), now)
        await self.staging.write(self.driver, now)
        await record_outcome(self.session, self.driver, self.ctx.job_id, self.issues, self.out)
        return self.out

    async def _progress(self, before: int, after: int) -> None:
        await move_progress(self.session, self.ctx.job_id, before, after)

    async def _create(self, rows: list[RowResult], now: datetime) -> list[dict[str, Any]]:
        """Inserts the new members in one executemany; returns the values (dicts) of those events or
        interactions need. Each row's INSERT row was shaped where it was read (shape_rows); only the id, and a
        card number made from it, are added here."""
        created: list[dict[str, Any]] = []
        tuples: list[tuple[Any, ...]] = []
        columns = insert_columns(self.ctx.fields)
        number_at = columns.index("card_number") - 1 if "card_number" in columns else -1
        normal = self.normal
        ids = await self.session.run_sync(lambda s: allocate_ids(s, {CUSTOMER: len(rows)}))
        for customer_id, row in zip(ids[CUSTOMER], rows):
            v, body = row.values, row.insert
            assert v is not None and body is not None
            opens = "card_number" in v or "card_open_time" in v
            if opens and "card_number" not in v:
                body = (*body[:number_at], card_number(customer_id), *body[number_at + 1:])
            tuples.append((customer_id, *body))
            if normal or opens:
                number = body[number_at] if opens else None
                open_mall = v.get("card_open_mall_id") if opens else None
                created.append({
                    "id": customer_id, "phone": v.get("phone"), "email": v.get("email"), "level": v.get("level", 0),
                    "registration_mall_id": v.get("registration_mall_id", open_mall), "card_opened": opens,
                    "card_number": number, "card_open_mall_id": open_mall,
                    "card_open_time": v.get("card_open_time", now) if opens else None})
        if not self.normal and tuples:
            imported_events(self.session, self.ctx, tuples, columns, now)
        await self.driver.insert(CUSTOMER, columns, tuples)
        self.out.created += len(tuples)
        self.created_ids = [row[0] for row in tuples]
        await self._stats(self.created_ids)
        if self.normal:
            created_events(self.staging, self.ctx, created, now, self.driver.time(now))
        return created

    async def _stats(self, ids: list[int]) -> None:
        """Every member has its customer_stats row, all zero, from the start (the member list joins it)."""
        if not ids:
            return
        d = self.driver
        names = ", ".join(STATS_COLUMNS)
        zeros = ", ".join(["0"] * (len(STATS_COLUMNS) - 1))
        conn = await self.session.connection()
        if d.sqlite:
            # The ids of a batch are consecutive on SQLite (allocate_ids, one writer): one statement.
            await conn.exec_driver_sql(f"INSERT INTO customer_stats ({names}) SELECT id, {zeros} FROM customer "
                                       "WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))
        else:
            await conn.exec_driver_sql(f"INSERT INTO customer_stats ({names}) SELECT unnest(%s::bigint[]), {zeros}",
                                       (ids,))

    async def _update(self, updates: dict[int, RowResult], existing: dict[int, Any],
                      now: datetime) -> dict[int, dict[str, Any]]:
        staff = self.ctx.reference.staff_phones
        changed: dict[int, dict[str, Any]] = {}
        for customer_id, row in updates.items():
            v = row.values
            assert v is not None
            cur = existing[customer_id]
            changes = changes_of(cur, {k: v[k] for k in PROFILE if k in v})
            if not cur.card_opened and ("card_number" in v or "card_open_time" in v):
                changes.update(card_opened=True, card_open_channel=IMPORT_CHANNEL,
                               card_number=v.get("card_number") or card_number(customer_id),
                               card_open_time=v.get("card_open_time", now))
                for k in ("card_open_mall_id", "promotion_channel", "open_scene"):
                    if k in v:
                        changes[k] = v[k]
                if cur.registration_mall_id is None and "registration_mall_id" not in changes \
                        and "card_open_mall_id" in v:
                    changes["registration_mall_id"] = v["card_open_mall_id"]
            elif cur.card_opened:
                changes.update(changes_of(cur, {k: v[k] for k in CARD if k in v}))
            if "phone" in changes:
                changes["store_member"] = changes["phone"] in staff
            if changes:
                changed[customer_id] = changes
            else:
                self.out.unchanged += 1
        d = self.driver
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
        now_text = d.time(now)
        for customer_id, changes in changed.items():
            columns = tuple(sorted(changes))
            groups[columns].append((*(d.convert(c, changes[c]) for c in columns), now_text, customer_id))
        for columns, params in groups.items():
            await d.update(CUSTOMER, (*columns, "updated_at"), params)
        self.out.updated += len(changed)
        if self.normal:
            update_events(self.staging, self.ctx, changed, existing)
        return changed

    async def _interactions(self, created: list[dict[str, Any]], changed: dict[int, dict[str, Any]],
                            existing: dict[int, Any]) -> None:
        """A card opened in a mall other than the registration mall relates the member to it (as OpenCard does)."""
        pairs = []
        for values in created:
            mall, home = values["card_open_mall_id"], values["registration_mall_id"]
            if values["card_opened"] and mall is not None and mall != home:
                pairs.append({"customer_id": values["id"], "mall_id": mall, "first_kind": "bind_card",
                              "first_at": values["card_open_time"]})
        for customer_id, changes in changed.items():
            mall = changes.get("card_open_mall_id")
            home = changes.get("registration_mall_id", existing[customer_id].registration_mall_id)
            if changes.get("card_opened") and mall is not None and mall != home:
                pairs.append({"customer_id": customer_id, "mall_id": mall, "first_kind": "bind_card",
                              "first_at": changes["card_open_time"]})
        if pairs:
            stmt = _insert(self.session)(table_of(CustomerInteraction)).on_conflict_do_nothing(
                index_elements=["customer_id", "mall_id"])
            await self.session.execute(stmt, pairs)

    async def _add_tag(self, customer_ids: list[int], now: datetime, *, returning: bool) -> list[int]:
        """Puts the job's tag on these customers with one statement; with ``returning``, the ids it was added to.

        Inserts the missing pairs only, as tagging.add_tags does: a customer never carries a tag twice, and a
        concurrent tagger's pair is not reported again.
        """
        tag = self.ctx.tag
        assert tag is not None
        if not customer_ids:
            return []
        d = self.driver
        conn = await self.session.connection()
        back = " RETURNING customer_id" if returning else ""
        if d.sqlite:
            added = await conn.exec_driver_sql(
                "INSERT INTO customer_tag (customer_id, tag_id, created_at) SELECT value, ?, ? FROM json_each(?) "
                f"WHERE true ON CONFLICT (customer_id, tag_id) DO NOTHING{back}",
                (tag.id, d.time(now), json.dumps(customer_ids)))
        else:
            added = await conn.exec_driver_sql(
                "INSERT INTO customer_tag (customer_id, tag_id, created_at) SELECT unnest(%s::bigint[]), %s, %s "
                f"ON CONFLICT (customer_id, tag_id) DO NOTHING{back}", (customer_ids, tag.id, now))
        return sorted(row[0] for row in added) if returning else []

    async def _tag(self, customer_ids: list[int], now: datetime) -> None:
        """Normal mode: puts the job's tag on these customers; each pair actually added is announced and recorded."""
        ids = await self._add_tag(customer_ids, now, returning=True)
        tag_events(self.staging, self.ctx, ids, now, self.driver.time(now))
