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

The job's progress moves first, in the same transaction, guarded by the progress it expects:
a second runner on the same job finds the guard failed and stops (``Superseded``), and a
batch that does not commit leaves the progress where it was.
"""

from __future__ import annotations

import json
from collections import defaultdict
from operator import itemgetter
from types import SimpleNamespace
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import member_pb2
from crowdpack.events.v1 import customer_events_pb2 as event_pb
from services.common.chunks import IN_LIST, chunks
from services.common.bulk import allocate_ids, insert_rows, update_rows
from services.common.clock import utcnow
from services.common.outbox import OUTBOX_COLUMNS, add_event, event_rows
from services.common.validation import aware, to_timestamp
from services.customer import timeline
from services.customer.imports.models import ImportJob, ImportRowIssue
from services.customer.imports.rows import CONFLICT, DUPLICATE, OK, Reference, RowResult
from services.customer.levels.rules import add_months
from services.customer import member_events
from services.customer.members.cards import card_number
from services.customer.classification.models import Tag
from services.customer.models import Customer, CustomerInteraction, OutboxEvent, TimelineEntry

CUSTOMER = Customer.__table__
MEMBER = member_pb2.CUSTOMER_KIND_MEMBER
IMPORT_CHANNEL = member_pb2.OPEN_CHANNEL_IMPORT
PROFILE = ("phone", "email", "name", "real_name", "gender", "birthday", "avatar_url", "wechat_openid",
           "wechat_unionid", "douyin_id", "alipay_id", "xiaohongshu_id", "registration_mall_id", "registered_at")
CARD = ("card_number", "card_open_time", "card_open_mall_id", "promotion_channel", "open_scene")
STATE = ("id", "kind", "deleted_at", "card_opened", "store_member", *PROFILE, *CARD)
# Column -> the Member message field named in MemberUpdated.changed_fields.
MEMBER_FIELDS = {"registered_at": "registration_time", "card_number": "card.card_number",
                 "card_open_time": "card.open_time", "card_open_mall_id": "card.open_mall_id",
                 "promotion_channel": "card.promotion_channel", "open_scene": "card.open_scene",
                 "card_opened": "card.opened", "card_open_channel": "card.open_channel"}


# The columns a new member is inserted with, in order (every column of ``customer`` the import sets).
CREATE_COLUMNS = ("id", "kind", "phone", "email", "name", "real_name", "gender", "birthday", "avatar_url",
                  "wechat_openid", "wechat_unionid", "douyin_id", "alipay_id", "xiaohongshu_id", "registered_at",
                  "registration_mall_id", "card_opened", "card_number", "card_open_time", "card_open_mall_id",
                  "card_open_channel", "promotion_channel", "open_scene", "level", "level_frozen", "level_expires_at",
                  "group_id", "disabled", "review_status", "store_member", "virtual", "deleted_at", "created_at",
                  "updated_at")
TIME_COLUMNS = {"registered_at", "card_open_time", "level_expires_at", "deleted_at", "created_at", "updated_at"}
DATE_COLUMNS = {"birthday"}
BOOL_COLUMNS = {"card_opened", "level_frozen", "disabled", "store_member", "virtual"}
SQLITE_CACHE_KIB = 65536
# Most members one customer.members.imported event carries (a fast batch may make several).
IMPORTED_PER_EVENT = 10_000
# The customer_stats row every member has, all zero (as stats.empty_stats makes one).
STATS_COLUMNS = ("customer_id", "points_balance", "red_packet_balance_fen", "stored_balance_fen", "spend_count",
                 "spend_total_fen", "level_spend_fen", "cumulative_spend_fen", "points_entry_id",
                 "red_packet_entry_id", "stored_entry_id")


def _same_value(value: Any) -> Any:
    return value


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime text (UTC fields), so rows written here read back like any other."""
    if value is None:
        return None
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond:06d}")


def _sqlite_date(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _sqlite_bool(value: bool) -> int:
    return 1 if value else 0


class Driver:
    """Statements sent straight to the driver (executemany), skipping per-row SQLAlchemy processing."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.sqlite = session.bind.dialect.name == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.time = _sqlite_time if self.sqlite else _same_value
        self.date = _sqlite_date if self.sqlite else _same_value
        self.bool = _sqlite_bool if self.sqlite else _same_value

    def convert(self, column: str, value: Any) -> Any:
        if column in TIME_COLUMNS:
            return self.time(value)
        if column in DATE_COLUMNS:
            return self.date(value)
        if column in BOOL_COLUMNS:
            return self.bool(value)
        return value

    def marks(self, n: int) -> str:
        return ", ".join([self.mark] * n)

    async def insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """INSERTs rows in this driver's form (``convert``: on SQLite already its text), through ``bulk``."""
        if rows:
            await self.session.run_sync(lambda s: insert_rows(s.connection(), table, columns, rows,
                                                              converted=self.sqlite))

    async def update(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """``UPDATE table SET columns WHERE id = ...`` per row (the values, then the id), as ``insert`` goes."""
        if rows:
            await self.session.run_sync(lambda s: update_rows(s.connection(), table, columns, ("id",), rows,
                                                              converted=self.sqlite))


class Staging:
    """Stands in for the session where timeline.record and the member events *add* rows, and collects
    the rows the writer builds itself (``entry``, ``event``) for new members and tags.

    The batch writes them all with two executemany statements instead of one ORM insert (and one
    round trip to the database thread) each. Everything else goes to the real session.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.bind = session.bind
        self.added: list[Any] = []

        # Built here directly (no ORM object each): timeline rows (customer_id, kind, detail, actor_id,
        # created_at), the time in the driver's format, and event messages (outbox.event_rows writes them).
        self.entries: list[tuple[Any, ...]] = []
        self.events: list[Message] = []

    def add(self, row: Any) -> None:
        self.added.append(row)

    def entry(self, customer_id: int, kind: str, actor_id: str, at: Any, **detail: Any) -> None:
        """What timeline.record writes (same detail JSON), as a row."""
        self.entries.append((customer_id, kind, json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True),
                             actor_id, at))

    def event(self, message: Any) -> None:
        """What outbox.add_event writes, as a message the batch writes with the others (outbox.event_rows)."""
        self.events.append(message)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self.session.execute(*args, **kwargs)

    async def write(self, driver: Driver, now: datetime) -> None:
        timeline_rows = [(r.customer_id, r.kind, r.detail, r.actor_id, driver.time(r.created_at))
                         for r in self.added if isinstance(r, TimelineEntry)]
        outbox_rows = [(r.msg_id, r.subject, r.payload, r.created_at) for r in self.added if isinstance(r, OutboxEvent)]
        if len(timeline_rows) + len(outbox_rows) != len(self.added):
            raise TypeError("only timeline entries and outbox events are staged")
        timeline_rows += self.entries
        outbox_rows += event_rows(self.events, now)
        self.added, self.entries, self.events = [], [], []
        await driver.insert(TimelineEntry.__table__, ("customer_id", "kind", "detail", "actor_id", "created_at"),
                            timeline_rows)
        if outbox_rows:
            await self.session.run_sync(lambda s: insert_rows(s.connection(), OutboxEvent.__table__, OUTBOX_COLUMNS,
                                                              outbox_rows))


class Superseded(Exception):
    """Another runner moved this job on; this one stops."""


@dataclass(frozen=True)
class JobContext:
    job_id: int
    mode: int
    tag: Tag | None
    operator_id: str
    reference: Reference
    # The member fields the file's columns feed.
    fields: frozenset[str] = frozenset(CREATE_COLUMNS)


# Nullable columns, and the file fields that can make them non-null; the others stay out of the INSERT
# (binding fewer parameters per row is measurably faster on SQLite).
OPTIONAL_SOURCES = {
    "phone": {"phone"}, "email": {"email"}, "birthday": {"birthday"}, "wechat_openid": {"wechat_openid"},
    "wechat_unionid": {"wechat_unionid"}, "douyin_id": {"douyin_id"}, "alipay_id": {"alipay_id"},
    "xiaohongshu_id": {"xiaohongshu_id"}, "registration_mall_id": {"registration_mall_id", "card_open_mall_id"},
    "card_number": {"card_number", "card_open_time"}, "card_open_time": {"card_number", "card_open_time"},
    "card_open_mall_id": {"card_open_mall_id"}, "level_expires_at": {"level"}, "group_id": set(), "deleted_at": set(),
}


def insert_columns(fields: frozenset[str]) -> tuple[str, ...]:
    return tuple(c for c in CREATE_COLUMNS if c not in OPTIONAL_SOURCES or OPTIONAL_SOURCES[c] & fields)


@dataclass(frozen=True)
class Shape:
    """What a new member's INSERT row needs besides the row's values: the reference data, the file's fields
    and the database's formats. Rows are shaped where they are read and checked (the job's reading
    thread), which takes that work off the event loop the writer runs on."""

    reference: Reference
    fields: frozenset[str]
    sqlite: bool


def shape_rows(shape: Shape, rows: Sequence[RowResult], now: datetime) -> None:
    """Gives each OK row ``insert``: the customer row written if it creates a member, in ``insert_columns``
    order without the id. A card number made from the id is left None (the writer fills it in)."""
    ref = shape.reference
    review = member_pb2.REVIEW_STATUS_PENDING if ref.review_required else member_pb2.REVIEW_STATUS_APPROVED
    t, b, y = (_sqlite_time, _sqlite_bool, _sqlite_date) if shape.sqlite else (_same_value,) * 3
    now_text, true, false = t(now), b(True), b(False)
    staff, months_of = ref.staff_phones, ref.levels
    columns = insert_columns(shape.fields)
    # CREATE_COLUMNS without the id, picked down to the columns the file can fill.
    pick = (itemgetter(*(CREATE_COLUMNS.index(c) - 1 for c in columns[1:]))
            if len(columns) < len(CREATE_COLUMNS) else None)
    for row in rows:
        v = row.values
        if row.status != OK or v is None:
            continue
        get = v.get
        opens = "card_number" in v or "card_open_time" in v
        level = get("level", 0)
        months = months_of.get(level, 0) if level else 0
        open_mall = get("card_open_mall_id") if opens else None
        registered = get("registered_at")
        phone = get("phone")
        full = (
            MEMBER, phone, get("email"), get("name", ""), get("real_name", ""),
            get("gender", member_pb2.GENDER_UNKNOWN), y(get("birthday")), get("avatar_url", ""),
            get("wechat_openid"), get("wechat_unionid"), get("douyin_id"), get("alipay_id"),
            get("xiaohongshu_id"), t(registered) if registered else now_text,
            get("registration_mall_id", open_mall), true if opens else false, get("card_number") if opens else None,
            t(get("card_open_time", now)) if opens else None, open_mall, IMPORT_CHANNEL if opens else 0,
            get("promotion_channel", ""), get("open_scene", ""), level, false,
            t(add_months(now, months)) if months else None, None, false, review, true if phone in staff else false,
            false, None, now_text, now_text)
        row.insert = pick(full) if pick is not None else full


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicate: int = 0
    conflict: int = 0


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return aware(old) == new
    return old == new


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
            found.update(rows.all())
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
        valid = []
        for row in rows:
            if row.status == OK:
                valid.append(row)
            else:
                self._issue(row, row.status, row.field, row.reason)
        by_phone = await self._ids_by("phone", [r.values["phone"] for r in valid if "phone" in r.values])
        by_email = await self._ids_by("email", [r.values["email"] for r in valid if "email" in r.values])
        by_card = await self._ids_by("card_number", [r.values["card_number"] for r in valid
                                                     if "card_number" in r.values])
        existing = await self._states({*by_phone.values(), *by_email.values()})

        creates: list[RowResult] = []
        updates: dict[int, RowResult] = {}
        for row in valid:
            v = row.values
            assert v is not None
            phone_id, email_id = by_phone.get(v.get("phone", "")), by_email.get(v.get("email", ""))
            if phone_id is not None and email_id is not None and phone_id != email_id:
                self._issue(row, CONFLICT, "email", f"email: belongs to customer {email_id}, the phone to "
                                                    f"customer {phone_id}")
                continue
            target = phone_id if phone_id is not None else email_id
            owner = by_card.get(v.get("card_number", ""))
            if owner is not None and owner != target:
                self._issue(row, CONFLICT, "card_number", f"card_number: belongs to customer {owner}")
                continue
            if target is None:
                creates.append(row)
                continue
            found = existing[target]
            key = "phone" if phone_id is not None else "email"
            if found.kind != MEMBER:
                self._issue(row, CONFLICT, key, f"{key}: belongs to business customer {target}")
            elif found.deleted_at is not None:
                self._issue(row, CONFLICT, key, f"{key}: belongs to deleted member {target}")
            elif target in updates:
                self._issue(row, CONFLICT, key, f"{key}: matches the same member ({target}) as row "
                                                f"{updates[target].number}, which changes its phone or email")
            else:
                updates[target] = row

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
            self._updated_event(sorted(changed.keys() | set(tagged)), now)
        await self.staging.write(self.driver, now)
        await self.driver.insert(ImportRowIssue.__table__, ("job_id", "row_number", "status", "field", "reason"),
                                 self.issues)
        # The counters move with the rows they count.
        await self.session.execute(update(ImportJob).where(ImportJob.id == self.ctx.job_id).values(
            created_count=ImportJob.created_count + self.out.created,
            updated_count=ImportJob.updated_count + self.out.updated,
            unchanged_count=ImportJob.unchanged_count + self.out.unchanged,
            invalid_count=ImportJob.invalid_count + self.out.invalid,
            duplicate_count=ImportJob.duplicate_count + self.out.duplicate,
            conflict_count=ImportJob.conflict_count + self.out.conflict))
        return self.out

    async def _progress(self, before: int, after: int) -> None:
        moved = await self.session.execute(
            update(ImportJob).where(ImportJob.id == self.ctx.job_id, ImportJob.processed_rows == before,
                                    ImportJob.state == pb.IMPORT_JOB_STATE_RUNNING)
            .values(processed_rows=after))
        if moved.rowcount != 1:
            raise Superseded(f"import job {self.ctx.job_id} moved past row {before} elsewhere")

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
            self._imported_event(tuples, columns, now)
        await self.driver.insert(CUSTOMER, columns, tuples)
        self.out.created += len(tuples)
        self.created_ids = [row[0] for row in tuples]
        await self._stats(self.created_ids)
        if self.normal:
            self._created_events(created, now)
        return created

    def _created_events(self, created: list[dict[str, Any]], now: datetime) -> None:
        """What CreateMember and OpenCard announce and record (member_events.py, timeline.record), per member.

        Built here as rows, not through those helpers' ORM objects: the same messages and details at a
        fraction of the cost.
        """
        actor, stage, at = self.ctx.operator_id, self.staging, self.driver.time(now)
        detail = json.dumps({"job_id": self.ctx.job_id, "source": "import"}, sort_keys=True)
        channel = member_pb2.OpenChannel.Name(IMPORT_CHANNEL)
        entries, Created, Opened, stamp = stage.entries, event_pb.MemberCreated, event_pb.MemberCardOpened, to_timestamp
        create_time = stamp(now)
        for v in created:
            member_id = v["id"]
            entries.append((member_id, "created", detail, actor, at))
            stage.event(Created(member_id=str(member_id), phone=v["phone"] or "", email=v["email"] or "",
                                create_time=create_time, registration_mall_id=str(v["registration_mall_id"] or ""),
                                level=v["level"]))
            if v["card_opened"]:
                stage.entry(member_id, "card_opened", actor, at, card_number=v["card_number"],
                            mall_id=v["card_open_mall_id"], channel=channel)
                stage.event(Opened(member_id=str(member_id), card_number=v["card_number"] or "",
                                   mall_id=str(v["card_open_mall_id"] or ""), channel=channel,
                                   open_time=stamp(v["card_open_time"])))

    def _imported_event(self, tuples: list[tuple[Any, ...]], columns: Sequence[str], now: datetime) -> None:
        """Fast mode's announcement of the members a batch created, for the ledger's accounts and scope and the
        crowd index."""
        level_at = columns.index("level")
        malls_at = [columns.index(c) if c in columns else None for c in ("registration_mall_id", "card_open_mall_id")]

        def malls(part: list[tuple[Any, ...]], at: int | None) -> list[str]:
            return [] if at is None else [str(row[at] or "") for row in part]

        for part in chunks(tuples, IMPORTED_PER_EVENT):
            add_event(self.session, OutboxEvent, event_pb.MembersImported(
                job_id=str(self.ctx.job_id), member_ids=[str(row[0]) for row in part],
                levels=[row[level_at] for row in part], create_time=to_timestamp(now),
                registration_mall_ids=malls(part, malls_at[0]), card_open_mall_ids=malls(part, malls_at[1])))

    def _updated_event(self, ids: list[int], now: datetime) -> None:
        """Fast mode's announcement of the existing members a batch changed or tagged, for the crowd index."""
        for part in chunks(ids, IMPORTED_PER_EVENT):
            add_event(self.session, OutboxEvent, event_pb.MembersImported(
                job_id=str(self.ctx.job_id), updated_member_ids=[str(i) for i in part], create_time=to_timestamp(now)))

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
            changes = {k: v[k] for k in PROFILE if k in v and not _same(getattr(cur, k), v[k])}
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
                changes.update({k: v[k] for k in CARD if k in v and not _same(getattr(cur, k), v[k])})
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
            await self._update_events(changed, existing)
        return changed

    async def _update_events(self, changed: dict[int, dict[str, Any]], existing: dict[int, Any]) -> None:
        actor = self.ctx.operator_id
        for customer_id, changes in changed.items():
            cur = existing[customer_id]
            member = SimpleNamespace(**{**{k: getattr(cur, k) for k in STATE}, "card_open_channel": 0, **changes})
            opened = changes.get("card_opened") is True
            fields = [k for k in changes if k != "store_member" and not (opened and k in ("card_opened",
                                                                                          "card_open_channel"))]
            for key in fields:
                timeline.record(self.staging, customer_id, "attribute_changed", actor,  # type: ignore[arg-type]
                                field=key, old=getattr(cur, key, None), new=changes[key], source="import",
                                job_id=self.ctx.job_id)
            if opened:
                timeline.record(self.staging, customer_id, "card_opened", actor,  # type: ignore[arg-type]
                                card_number=member.card_number, mall_id=member.card_open_mall_id,
                                channel="OPEN_CHANNEL_IMPORT")
                member_events.card_opened(self.staging, member)  # type: ignore[arg-type]
            if fields:
                member_events.updated(self.staging, member,  # type: ignore[arg-type]
                               [MEMBER_FIELDS.get(k, k) for k in fields], actor)

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
            stmt = _insert(self.session)(CustomerInteraction.__table__).on_conflict_do_nothing(
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
        tag = self.ctx.tag
        assert tag is not None
        ids = await self._add_tag(customer_ids, now, returning=True)
        # What tagging.add_tags records and announces for each pair it adds.
        actor, at, stage = self.ctx.operator_id, self.driver.time(now), self.staging
        detail = json.dumps({"tag": tag.name}, ensure_ascii=False, sort_keys=True)
        change_time, tag_id = to_timestamp(now), str(tag.id)
        for customer_id in ids:
            stage.entries.append((customer_id, "tag_added", detail, actor, at))
            stage.event(event_pb.CustomerTagged(customer_id=str(customer_id), tag_id=tag_id, tag_name=tag.name,
                                                operator_id=actor, change_time=change_time))
