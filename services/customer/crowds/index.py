"""The in-memory member index the crowd packages run on, and how it stays fresh.

``CrowdIndex.build`` loads every member column, the tag, group and interaction-mall bitmaps
and the orders from the database into a ``segment_engine.MemberIndex`` (columnar reads,
``crowds/loader.py``). After that, the index follows the CUSTOMER stream (an ephemeral
ordered consumer starting right after the sequence read before the load): every event naming
members re-reads those members and updates the engine in place (their columns, and only the
bitmaps they enter or leave, found from ``Memberships``: a refresh costs the same with 10 bitmaps
or 10,000; a fast import names its members batch by batch; the events queued while a refresh runs
are applied together, so a burst about one member is one refresh), except what the ledger
projection's ``MembersActivityChanged`` carries itself (its members' balances, online spend, level
and store-member flag, the interaction malls it added): that is applied as it stands, and the level
changes and name or phone changes of the same batch need no re-read either (``apply``); new orders are
appended and a refund reloads the orders. Every change to indexed data commits with an outbox
event, so the database read after the event always sees it. ``save``/``restore`` snapshot the index with
its stream sequence, so a start replays only what happened since (``start``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import make_url, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import segment_engine as se
from crowdpack.events.v1.customer_events_pb2 import MemberLevelChanged, MembersActivityChanged, MemberUpdated
from services.common.db import Database
from services.common.events import CUSTOMER_STREAM, SUBJECT_TYPES, decode
from services.common.logs import get_logger
from services.common.retry import one_line
from services.customer.crowds import loader
from services.customer.crowds.columns import COLUMNS, DEFAULT_GROUP, LIVE, group_bitmap, interaction_bitmap, tag_bitmap
from services.customer.crowds.translate import LEVEL_CHANGES, Translation
from services.customer.organization.models import Mall

T = TypeVar("T")
log = get_logger(__name__)

SNAPSHOT_FORMAT = 2
# Bitmaps that follow members' rows (``refresh_members`` keeps them); the rest are unions of them.
MEMBER_BITMAPS = ("tag:", "group:", "interaction:")
MAX_U32 = 2**32 - 1
# Event fields naming the members an event is about (one id or many, as text or numbers).
MEMBER_ID_FIELDS = frozenset({"member_id", "customer_id", "member_ids", "customer_ids",
                              "updated_member_ids"})


def _bitmap_package(*names: str) -> dict:
    return {"groups": [{"op": "include", "all": [{"bitmap": name} for name in names]}]}


def _is_member_bitmap(name: str) -> bool:
    return name == LIVE or name.startswith(MEMBER_BITMAPS)


def member_ids(event: Message) -> Iterator[int]:
    """The members an event names, in its own fields or its nested messages (e.g. a batch of imported members).

    Any event type is read the same way, so a new event about members needs no change here.
    """
    for field, value in event.ListFields():
        values: Iterable[Any] = (value,) if isinstance(value, (str, int, Message)) else value
        if field.message_type is not None:
            for nested in values:
                yield from member_ids(nested)
        elif field.name in MEMBER_ID_FIELDS:
            for one in values:
                if isinstance(one, int) or (isinstance(one, str) and one.isdigit()):
                    yield int(one)


class Memberships:
    """Which member bitmaps each member is in: where a refreshed member was, without looking in every bitmap.

    The state at a build or restore is kept compactly (member ids sorted, with a bitmap number each:
    8 bytes a membership); members refreshed since then are kept in a dict.
    """

    def __init__(self, bitmaps: dict[str, se.Bitmap]) -> None:
        self.names = sorted(bitmaps)
        parts = [bitmaps[name].to_numpy().astype(np.int64) for name in self.names]
        members = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        numbers = np.concatenate([np.full(len(p), i, dtype=np.int32) for i, p in enumerate(parts)]) if parts \
            else np.zeros(0, dtype=np.int32)
        order = np.argsort(members, kind="stable")
        self._members, self._numbers = members[order], numbers[order]
        self._since: dict[int, frozenset[str]] = {}

    def of(self, member_id: int) -> frozenset[str]:
        found = self._since.get(member_id)
        if found is not None:
            return found
        lo, hi = np.searchsorted(self._members, [member_id, member_id + 1])
        return frozenset(self.names[n] for n in self._numbers[lo:hi])

    def set(self, member_id: int, names: frozenset[str]) -> None:
        self._since[member_id] = names


def _wanted(changed: np.ndarray, wanted: dict[str, se.Bitmap]) -> dict[int, set[str]]:
    """Each changed member's member bitmaps, from the bitmaps a re-read puts them in."""
    out: dict[int, set[str]] = {int(m): set() for m in changed}
    for name, ids in wanted.items():
        for m in ids.to_numpy().tolist():
            out[m].add(name)
    return out


# The index columns a MembersActivityChanged carries, in the order ``Activity`` keeps them, and which are times.
ACTIVITY = ("points", "red_packet", "online_count", "online_total", "online_last_day", "level", "level_expire_day",
            "store_member")
TIMES = frozenset({"online_last_day", "level_expire_day"})
# MemberUpdated fields the index has no column for (name, phone) or that an activity event carries.
CARRIED_FIELDS = frozenset({"real_name", "phone", "store_member"})


class Activity:
    """What the ``MembersActivityChanged`` events of one apply carry: each member's activity columns as the latest
    event naming it left them, and the interaction malls they added (in stream order)."""

    def __init__(self) -> None:
        self.values: dict[int, tuple[int, ...]] = {}
        self.interactions: list[tuple[int, int]] = []
        self.last: list[int] = []  # the members of the last event added

    def add(self, event: MembersActivityChanged) -> bool:
        """Takes the event's values; False (nothing taken) if it carries none (published before they existed)."""
        if not event.member_ids or len(event.points_balances) != len(event.member_ids):
            return False
        self.last = [int(m) for m in event.member_ids]
        self.values.update(zip(self.last, zip(
            event.points_balances, event.red_packet_balances_fen, event.online_counts, event.online_totals_fen,
            event.online_last_seconds, event.levels, event.level_expire_seconds,
            (int(flag) for flag in event.store_members), strict=True), strict=True))
        self.interactions.extend(zip(event.interaction_members, event.interaction_malls, strict=True))
        return True

    def drop(self, members: set[int]) -> None:
        """Forgets what it holds of these members (re-read instead)."""
        if members:
            self.values = {m: v for m, v in self.values.items() if m not in members}
            self.interactions = [(m, mall) for m, mall in self.interactions if m not in members]


class CrowdIndex:
    def __init__(self, db: Database, timezone: str = "Asia/Shanghai") -> None:
        self.db = db
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.index = se.MemberIndex(1)
        self.sequence = 0  # the last CUSTOMER stream sequence reflected in the index
        self.built_at: datetime | None = None
        self.source = ""  # where ``start`` loaded the index from: "snapshot" or "database"
        self._unions: dict[str, frozenset[str]] = {}  # registered union -> the bitmaps it joins
        self._order_ids = se.Bitmap()  # the orders in the index (ledger order ids), so none is added twice
        self._orders_dirty = False
        self._memberships = Memberships({})
        self._lock = asyncio.Lock()

    # --- building

    async def start(self, js: JetStreamContext, snapshot: Path) -> str:
        """Loads the snapshot if it is usable (the stream still holds every event since), else the database.

        Returns where the index came from: ``"snapshot"`` or ``"database"``.
        """
        state = (await js.stream_info(CUSTOMER_STREAM.name)).state
        started = datetime.now(UTC)
        if self.restore(snapshot):
            if state.first_seq <= self.sequence + 1 <= state.last_seq + 1:
                log.info("crowd index loaded from its snapshot", members=self.index.n_members - 1,
                         orders=self.index.n_orders, sequence=self.sequence, replay=state.last_seq - self.sequence,
                         seconds=round((datetime.now(UTC) - started).total_seconds(), 2))
                self.source = "snapshot"
                return self.source
            log.warning("crowd index snapshot is not covered by the stream; rebuilding", sequence=self.sequence,
                        first_seq=state.first_seq, last_seq=state.last_seq)
        await self.build(js)
        self.source = "database"
        return self.source

    async def build(self, js: JetStreamContext | None = None) -> None:
        """Loads everything from the database (after noting the stream position)."""
        started = datetime.now(UTC)
        if js is not None:
            self.sequence = (await js.stream_info(CUSTOMER_STREAM.name)).state.last_seq
        async with self._lock:
            index, order_ids, memberships = await self._load()
            self.index, self._order_ids, self._memberships = index, order_ids, memberships
            self._unions.clear()
            self._orders_dirty = False
            self.built_at = datetime.now(UTC)
        log.info("crowd index built", members=index.n_members - 1, orders=index.n_orders, sequence=self.sequence,
                 seconds=round((self.built_at - started).total_seconds(), 2))

    async def _load(self) -> tuple[se.MemberIndex, se.Bitmap, Memberships]:
        """Reads the members and the orders at the same time, on two connections (each read is after the
        stream position was noted, so whatever either misses arrives as an event)."""

        async def read_members() -> tuple[int, loader.Members, dict[str, np.ndarray]]:
            async with self.db.read() as session:
                top = await loader.top_customer_id(session)
                return top, await loader.members(session, self.tz), await loader.memberships(session)

        async def read_orders() -> loader.Orders:
            async with self.db.read() as session:
                return await self._orders(session)

        (top, rows, pairs), orders = await asyncio.gather(read_members(), read_orders())
        n = 1 + max([top, *(int(p[:, 0].max()) for p in pairs.values() if len(p)),
                     int(orders.member.max()) if len(orders.member) else 0])
        index = se.MemberIndex(n)
        for name in COLUMNS:
            values, valid = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
            values[rows.ids], valid[rows.ids] = rows.values[name], rows.valid[name]
            index.set_column(name, values, valid)
        bitmaps = self._member_bitmaps(rows, pairs)
        bitmaps.setdefault(DEFAULT_GROUP, se.Bitmap())
        for name, ids in bitmaps.items():
            index.set_bitmap(name, ids)
        index.set_orders(*orders.arrays())
        return index, _order_bitmap(orders.order_id), Memberships(bitmaps)

    @staticmethod
    def _member_bitmaps(rows: loader.Members, pairs: dict[str, np.ndarray]) -> dict[str, se.Bitmap]:
        """Every member bitmap the rows and the (member, tag) / (member, mall) pairs put someone in."""
        out = {LIVE: _bitmap(rows.ids[rows.live])}
        for group, ids in loader.grouped(np.column_stack([rows.ids, rows.group])).items():
            out[group_bitmap(group or None)] = _bitmap(ids)
        for kind, name in (("tag", tag_bitmap), ("interaction", interaction_bitmap)):
            for key, ids in loader.grouped(pairs.get(kind, np.zeros((0, 2), dtype=np.int64))).items():
                out[name(key)] = _bitmap(ids)
        return out

    @staticmethod
    def _zones(session: Session) -> dict[int, ZoneInfo]:
        return {mall_id: ZoneInfo(tz) for mall_id, tz in session.execute(select(Mall.id, Mall.timezone)).all()}

    async def _orders(self, session: AsyncSession, order_ids: Sequence[int] | None = None) -> loader.Orders:
        zones = {mall_id: ZoneInfo(tz) for mall_id, tz in (await session.execute(select(Mall.id, Mall.timezone))).all()}
        return await loader.orders(session, zones, self.tz, order_ids)

    # --- staying fresh

    async def refresh_members(self, ids: Iterable[int]) -> None:
        """Re-reads these members and updates them in place: their columns, and the bitmaps they enter or leave."""
        ids = sorted({int(i) for i in ids if int(i) > 0})
        if not ids:
            return
        async with self._lock:
            async with self.db.read() as session:
                rows = await loader.members(session, self.tz, ids)
                pairs = await loader.memberships(session, ids)
            top = max([int(rows.ids.max()) if len(rows.ids) else 0,
                       *(int(p[:, 0].max()) for p in pairs.values() if len(p))])
            if top >= self.index.n_members:
                self.index.grow(top + 1)
            changed = np.array([i for i in ids if i < self.index.n_members], dtype=np.int64)
            if not len(changed):
                return
            # Columns: members get their values, ids that are no (longer a) member are null, as in a build.
            at = np.searchsorted(changed, rows.ids)
            for name in COLUMNS:
                values, valid = np.zeros(len(changed), dtype=np.int64), np.zeros(len(changed), dtype=bool)
                values[at], valid[at] = rows.values[name], rows.valid[name]
                self.index.update(name, changed.astype(np.uint32), values, valid)
            touched = self._refresh_bitmaps(changed, self._member_bitmaps(rows, pairs))
            for union, parts in list(self._unions.items()):
                if parts & touched:
                    del self._unions[union]

    def _refresh_bitmaps(self, changed: np.ndarray, wanted: dict[str, se.Bitmap]) -> set[str]:
        """Moves the ``changed`` members into exactly the ``wanted`` bitmaps; returns the bitmaps that changed.

        Only the bitmaps a changed member enters or leaves are read and written (``Memberships`` says where
        each was), so the cost follows the members and their bitmaps, not how many bitmaps there are.
        """
        enter: dict[str, list[int]] = {}
        leave: dict[str, list[int]] = {}
        for member_id, now in _wanted(changed, wanted).items():
            before = self._memberships.of(member_id)
            after = frozenset(now)
            if before == after:
                continue
            for name in after - before:
                enter.setdefault(name, []).append(member_id)
            for name in before - after:
                leave.setdefault(name, []).append(member_id)
            self._memberships.set(member_id, after)
        for name in sorted(enter.keys() | leave.keys()):
            current = self._bitmap(name)
            added = _bitmap(np.array(enter.get(name, ()), dtype=np.int64))
            removed = _bitmap(np.array(leave.get(name, ()), dtype=np.int64))
            self.index.set_bitmap(name, (current - removed) | added)
        return enter.keys() | leave.keys()

    def _bitmap(self, name: str) -> se.Bitmap:
        """The index's bitmap of that name, empty if it has none (asked by name: listing every bitmap to look
        would make a refresh cost follow how many there are)."""
        try:
            return self.index.evaluate(_bitmap_package(name))
        except ValueError as err:
            if "unknown bitmap" not in str(err):
                raise
            return se.Bitmap()

    async def append_orders(self, order_ids: Sequence[int]) -> None:
        """Adds these new orders (those already in the index, e.g. after a reload, are skipped)."""
        async with self._lock:
            fresh = [i for i in order_ids if i > MAX_U32 or i not in self._order_ids]
            if not fresh:
                return
            orders = await self.db.run_sync_read(lambda session: loader.some_orders(
                session, self._zones(session), self.tz, fresh))
            if len(orders.member) and int(orders.member.max()) >= self.index.n_members:
                self.index.grow(int(orders.member.max()) + 1)
            self.index.append_orders(*orders.arrays())
            self._order_ids = self._order_ids | _order_bitmap(orders.order_id)

    def orders_changed(self) -> None:
        """A refund changed an order already indexed: reload the orders before the next evaluation."""
        self._orders_dirty = True

    async def _settle(self) -> None:
        if self._orders_dirty:
            async with self._lock:
                self._orders_dirty = False
                async with self.db.read() as session:
                    orders = await self._orders(session)
                self.index.set_orders(*orders.arrays())
                self._order_ids = _order_bitmap(orders.order_id)

    async def follow(self, js: JetStreamContext) -> None:
        """Applies CUSTOMER events after ``self.sequence`` for ever (an ephemeral ordered consumer)."""
        queue: asyncio.Queue = asyncio.Queue()

        async def on_message(msg) -> None:
            await queue.put(msg)

        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.sequence + 1)
        sub = await js.subscribe("customer.>", stream=CUSTOMER_STREAM.name, cb=on_message, ordered_consumer=True,
                                 config=config)
        try:
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < 1000:
                    batch.append(queue.get_nowait())
                try:
                    await self.apply(batch)
                except Exception as err:  # noqa: BLE001 - a failed batch falls back to a full rebuild
                    log.warning("crowd index update failed; rebuilding", error=one_line(err))
                    await self.build()
                self.sequence = batch[-1].metadata.sequence.stream
        finally:
            await sub.unsubscribe()

    async def apply(self, msgs: Sequence) -> None:
        """Applies CUSTOMER events (in stream order): the members they name are re-read, but for what the events
        carry themselves.

        A ``MembersActivityChanged`` that carries its members' activity columns (``Activity``) is applied as it
        stands, read from nowhere. A level change, or a change of a member's name, phone or store-member flag, moves
        nothing in the index but columns such an event carries: a member it names is re-read only if no such event
        naming the member follows it here (the ledger projection publishes both in one transaction, the activity
        last). Any other event about a member, an activity event without values and a member the index has no row
        for yet have the member re-read, which covers every event about it before (the database has them all).
        """
        reread: set[int] = set()
        pending: set[int] = set()  # named by a partial event; re-read unless an activity event follows
        activity = Activity()
        new_orders: list[int] = []
        for msg in msgs:
            if msg.subject not in SUBJECT_TYPES:
                continue
            event = decode(msg.subject, msg.data)
            if isinstance(event, MembersActivityChanged) and activity.add(event):
                pending.difference_update(activity.last)
            elif isinstance(event, MemberLevelChanged) or (
                    isinstance(event, MemberUpdated) and set(event.changed_fields) <= CARRIED_FIELDS):
                pending.update(member_ids(event))
            else:
                reread.update(member_ids(event))
            new_orders.extend(int(order_id) for order_id in getattr(event, "new_order_ids", ()))
            if getattr(event, "orders_changed", False):
                self.orders_changed()
        reread |= pending
        reread.update(m for m in activity.values if m >= self.index.n_members)
        await self.refresh_members(reread)
        activity.drop(reread)
        if activity.values:
            async with self._lock:
                self._apply_activity(activity)
        if new_orders:
            await self.append_orders(new_orders)

    def _apply_activity(self, activity: Activity) -> None:
        """The activity columns and the interaction malls the events carried (their members are all in the index)."""
        ids = np.fromiter(sorted(activity.values), dtype=np.int64, count=len(activity.values))
        rows = np.array([activity.values[int(m)] for m in ids], dtype=np.int64).reshape(len(ids), len(ACTIVITY))
        at = ids.astype(np.uint32)
        for i, name in enumerate(ACTIVITY):
            values = rows[:, i]
            if name in TIMES:  # seconds since the epoch, 0 for none: a local day, as a build reads a stored time
                valid = values != 0
                values = np.where(valid, loader.local_days(np.where(valid, values, 0), self.tz), 0)
            else:
                valid = np.ones(len(ids), dtype=bool)
            self.index.update(name, at, values, valid)
        entered: dict[str, list[int]] = {}
        for member_id, mall_id in activity.interactions:
            name = interaction_bitmap(mall_id)
            before = self._memberships.of(member_id)
            if name not in before:
                entered.setdefault(name, []).append(member_id)
                self._memberships.set(member_id, before | {name})
        for name, added in entered.items():
            self.index.set_bitmap(name, self._bitmap(name) | _bitmap(np.array(added, dtype=np.int64)))
        for union, parts in list(self._unions.items()):
            if parts & entered.keys():
                del self._unions[union]

    # --- evaluation

    async def evaluate(self, translation: Translation) -> se.Bitmap:
        return await self._run(translation, lambda index: index.evaluate(translation.package))

    async def count(self, translation: Translation) -> int:
        return await self._run(translation, lambda index: index.count(translation.package))

    async def _run(self, translation: Translation, work: Callable[[se.MemberIndex], T]) -> T:
        """``work`` on the index once the package's unions and history bitmaps are in it (the latter only for it)."""
        await self._settle()
        history = await self._level_changes(translation)
        async with self._lock:
            self._prepare(translation)
            index = self.index
            for name, bitmap in history.items():
                index.set_bitmap(name, bitmap)
        try:
            return await asyncio.to_thread(work, index)
        finally:
            async with self._lock:
                for name in history:
                    index.drop_bitmap(name)

    async def _level_changes(self, translation: Translation) -> dict[str, se.Bitmap]:
        """The members each level change condition of the package names, read from the records now."""
        if not translation.level_changes:
            return {}
        tz = ZoneInfo(self.timezone)
        async with self.db.read() as session:
            return {name: _bitmap(await loader.level_changed(session, wanted, tz))
                    for name, wanted in translation.level_changes.items()}

    def _prepare(self, translation: Translation) -> None:
        """Registers the unions the package names (kept until a member bitmap they join changes)."""
        present = set(self.index.bitmaps())
        for name, parts in translation.unions.items():
            if name in self._unions and name in present:
                continue
            union = se.Bitmap()
            for part in parts:
                if part in present:
                    union = union | self.index.evaluate(_bitmap_package(part))
            self.index.set_bitmap(name, union)
            self._unions[name] = frozenset(parts)
        for name in translation.package_bitmaps():
            if name not in present and name not in self._unions:
                self.index.set_bitmap(name, se.Bitmap())  # a tag or mall nobody has yet

    # --- snapshots

    def save(self, folder: Path) -> Path:
        """Writes the index, its order ids and then (atomically) the manifest naming them and the sequence."""
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        path = folder / f"crowd-index-{token}.bin"
        self.index.save(path)
        orders = folder / f"crowd-index-{token}.orders"
        orders.write_bytes(self._order_ids.serialize())
        manifest = {"format": SNAPSHOT_FORMAT, "token": token, "sequence": self.sequence,
                    "timezone": self.timezone, "columns": list(COLUMNS), "database": self._database(),
                    "orders_dirty": self._orders_dirty, "saved_at": datetime.now(UTC).isoformat()}
        tmp = folder / "crowd-index.json.tmp"
        tmp.write_text(json.dumps(manifest))
        tmp.replace(folder / "crowd-index.json")
        for old in folder.glob("crowd-index*"):
            if old.name != "crowd-index.json" and token not in old.name:
                old.unlink(missing_ok=True)
        return path

    def _database(self) -> str:
        return make_url(self.db.url).render_as_string(hide_password=True)

    def restore(self, folder: Path) -> bool:
        """Loads the snapshot in ``folder`` if there is one made for this index's settings; False otherwise."""
        manifest_path = folder / "crowd-index.json"
        if not manifest_path.exists():
            return False
        try:
            manifest = json.loads(manifest_path.read_text())
            expected = {"format": SNAPSHOT_FORMAT, "timezone": self.timezone, "columns": list(COLUMNS),
                        "database": self._database()}
            differs = sorted(k for k, v in expected.items() if manifest.get(k) != v)
            if differs:
                log.warning("crowd index snapshot was made differently; rebuilding", differs=differs)
                return False
            token, sequence = str(manifest["token"]), int(manifest["sequence"])
            index = se.MemberIndex.load(folder / f"crowd-index-{token}.bin")
            order_ids = se.Bitmap.deserialize((folder / f"crowd-index-{token}.orders").read_bytes())
        except (ValueError, KeyError, TypeError, OSError) as err:
            log.warning("crowd index snapshot unusable; rebuilding", error=one_line(err))
            return False
        if set(index.columns()) != set(COLUMNS):
            log.warning("crowd index snapshot lacks columns; rebuilding")
            return False
        for name in index.bitmaps():
            if name.startswith(LEVEL_CHANGES):  # saved while an evaluation had it: it was only ever for that one
                index.drop_bitmap(name)
        self.index, self.sequence, self._order_ids = index, sequence, order_ids
        self._memberships = Memberships({name: index.evaluate(_bitmap_package(name))
                                         for name in index.bitmaps() if _is_member_bitmap(name)})
        self._orders_dirty = bool(manifest.get("orders_dirty"))
        self.built_at = datetime.now(UTC)
        self._unions.clear()
        return True


def _bitmap(ids: np.ndarray) -> se.Bitmap:
    return se.Bitmap.from_numpy(np.asarray(ids, dtype=np.uint32))


def _order_bitmap(order_ids: np.ndarray) -> se.Bitmap:
    """Order ids as a bitmap (ids past 2^32-1, which a ledger would need billions of orders for, are left out)."""
    order_ids = np.asarray(order_ids, dtype=np.int64)
    return se.Bitmap.from_numpy(order_ids[(order_ids >= 0) & (order_ids <= MAX_U32)].astype(np.uint32))
