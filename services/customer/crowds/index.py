"""The in-memory member index the crowd packages run on, and how it stays fresh.

``CrowdIndex.build`` loads every member column, the tag, group and interaction-mall bitmaps
and the orders from the database into a ``segment_engine.MemberIndex``. After that, the
index follows the CUSTOMER stream (an ephemeral ordered consumer starting right after the
sequence read before the load): every member event re-reads that member's row and updates
the engine in place, new orders are appended, and a refund or a fast import reloads what it
touched. Every change to indexed data commits with an outbox event, so the database read
after the event always sees it. ``save``/``restore`` snapshot the index (with its stream
sequence) so a restart replays only what happened since.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import segment_engine as se
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.common.events import CUSTOMER_STREAM, decode
from services.common.logs import get_logger
from services.common.retry import one_line
from services.customer.crowds.columns import (COLUMNS, DEFAULT_GROUP, LIVE, group_bitmap, interaction_bitmap,
                                              local_day, member_rows, member_values, tag_bitmap)
from services.customer.crowds.translate import Translation
from services.customer.models import Customer, CustomerInteraction, CustomerTag, Mall, MemberOrder

log = get_logger(__name__)

MEMBER = 1
CHUNK = 50_000


def _bitmap_package(name: str) -> dict:
    return {"groups": [{"op": "include", "all": [{"bitmap": name}]}]}


class CrowdIndex:
    def __init__(self, db: Database, timezone: str = "Asia/Shanghai") -> None:
        self.db = db
        self.tz = ZoneInfo(timezone)
        self.index = se.MemberIndex(1)
        self.sequence = 0  # the last CUSTOMER stream sequence reflected in the index
        self.built_at: datetime | None = None
        self._unions: dict[str, se.Bitmap] = {}
        self._orders_dirty = False
        self._lock = asyncio.Lock()

    # --- building

    async def build(self, js: JetStreamContext | None = None) -> None:
        """Loads everything from the database (after noting the stream position)."""
        if js is not None:
            self.sequence = (await js.stream_info(CUSTOMER_STREAM.name)).state.last_seq
        async with self._lock:
            async with self.db.read() as session:
                index = await self._load(session)
            self.index = index
            self._unions.clear()
            self._orders_dirty = False
            self.built_at = datetime.now(UTC)
        log.info("crowd index built", members=index.n_members - 1, orders=index.n_orders, sequence=self.sequence)

    async def _load(self, session: AsyncSession) -> se.MemberIndex:
        top = await session.scalar(select(func.max(Customer.id))) or 0
        n = top + 1
        values = {name: np.zeros(n, dtype=np.int64) for name in COLUMNS}
        valid = {name: np.zeros(n, dtype=bool) for name in COLUMNS}
        live: list[int] = []
        groups: dict[str, list[int]] = {}
        last = 0
        while True:
            rows = (await session.execute(member_rows().where(Customer.id > last).order_by(Customer.id)
                                          .limit(CHUNK))).all()
            if not rows:
                break
            last = rows[-1].id
            for row in rows:
                if row.kind != MEMBER:
                    continue
                if row.deleted_at is None:
                    live.append(row.id)
                for name, value in member_values(row, self.tz).items():
                    if value is not None:
                        values[name][row.id] = value
                        valid[name][row.id] = True
                groups.setdefault(group_bitmap(row.group_id), []).append(row.id)
        index = se.MemberIndex(n)
        for name in COLUMNS:
            index.set_column(name, values[name], valid[name])
        index.set_bitmap(LIVE, se.Bitmap(live))
        groups.setdefault(DEFAULT_GROUP, [])
        for name, ids in groups.items():
            index.set_bitmap(name, se.Bitmap(ids))
        for name, ids in (await self._memberships(session)).items():
            index.set_bitmap(name, se.Bitmap(ids))
        await self._load_orders(session, index)
        return index

    async def _memberships(self, session: AsyncSession, ids: Sequence[int] | None = None) -> dict[str, list[int]]:
        """Tag and interaction-mall bitmaps (for all members, or just ``ids``)."""
        out: dict[str, list[int]] = {}
        tags = select(CustomerTag.customer_id, CustomerTag.tag_id)
        malls = select(CustomerInteraction.customer_id, CustomerInteraction.mall_id)
        if ids is not None:
            tags = tags.where(CustomerTag.customer_id.in_(ids))
            malls = malls.where(CustomerInteraction.customer_id.in_(ids))
        for customer_id, tag_id in (await session.execute(tags)).all():
            out.setdefault(tag_bitmap(tag_id), []).append(customer_id)
        for customer_id, mall_id in (await session.execute(malls)).all():
            out.setdefault(interaction_bitmap(mall_id), []).append(customer_id)
        return out

    async def _zones(self, session: AsyncSession) -> dict[int, ZoneInfo]:
        return {mall_id: ZoneInfo(tz) for mall_id, tz in (await session.execute(select(Mall.id, Mall.timezone))).all()}

    async def _order_arrays(self, session: AsyncSession, where: Iterable = ()) -> tuple[np.ndarray, ...]:
        zones = await self._zones(session)
        member, store, day, amount = [], [], [], []
        query = select(MemberOrder.customer_id, MemberOrder.store_id, MemberOrder.mall_id, MemberOrder.occurred_at,
                       MemberOrder.amount_fen, MemberOrder.refunded_amount_fen) \
            .where(MemberOrder.fully_refunded.is_(False), MemberOrder.store_id.is_not(None), *where)
        for customer_id, store_id, mall_id, at, amount_fen, refunded in (await session.execute(query)).all():
            member.append(customer_id)
            store.append(store_id)
            day.append(local_day(at, zones.get(mall_id, self.tz)))
            amount.append(amount_fen - refunded)
        return (np.array(member, dtype=np.uint32), np.array(store, dtype=np.uint32), np.array(day, dtype=np.int32),
                np.array(amount, dtype=np.int64))

    async def _load_orders(self, session: AsyncSession, index: se.MemberIndex) -> None:
        index.set_orders(*await self._order_arrays(session))

    # --- staying fresh

    async def refresh_members(self, ids: Iterable[int]) -> None:
        """Re-reads these members from the database and updates them in place."""
        ids = sorted(set(ids))
        if not ids:
            return
        async with self._lock:
            async with self.db.read() as session:
                rows = (await session.execute(member_rows().where(Customer.id.in_(ids)))).all()
                memberships = await self._memberships(session, ids)
            top = max(r.id for r in rows) if rows else 0
            if top >= self.index.n_members:
                self.index.grow(top + 1)
            members = [r for r in rows if r.kind == MEMBER]
            if not members:
                return
            member_ids = np.array([r.id for r in members], dtype=np.uint32)
            per_member = [member_values(r, self.tz) for r in members]
            for name in COLUMNS:
                column = [v[name] for v in per_member]
                self.index.update(name, member_ids, np.array([x or 0 for x in column], dtype=np.int64),
                                  np.array([x is not None for x in column], dtype=bool))
            changed = se.Bitmap(member_ids.tolist())
            wanted: dict[str, set[int]] = {LIVE: {r.id for r in members if r.deleted_at is None}}
            for r in members:
                wanted.setdefault(group_bitmap(r.group_id), set()).add(r.id)
            for name, members_of in memberships.items():
                wanted[name] = set(members_of)
            names = set(wanted) | {n for n in self.index.bitmaps()
                                   if n.startswith(("tag:", "group:", "interaction:")) or n == LIVE}
            for name in names:
                current = self.index.evaluate(_bitmap_package(name)) if name in self.index.bitmaps() else se.Bitmap()
                updated = (current - changed) | se.Bitmap(sorted(wanted.get(name, ())))
                if updated != current:
                    self.index.set_bitmap(name, updated)
            self._unions.clear()

    async def append_orders(self, order_ids: Sequence[int]) -> None:
        async with self._lock:
            async with self.db.read() as session:
                arrays = await self._order_arrays(session, [MemberOrder.order_id.in_(list(order_ids))])
            if len(arrays[0]) and int(arrays[0].max()) >= self.index.n_members:
                self.index.grow(int(arrays[0].max()) + 1)
            self.index.append_orders(*arrays)

    def orders_changed(self) -> None:
        """A refund changed an order already indexed: reload the orders before the next evaluation."""
        self._orders_dirty = True

    async def _settle(self) -> None:
        if self._orders_dirty:
            async with self._lock:
                self._orders_dirty = False
                async with self.db.read() as session:
                    await self._load_orders(session, self.index)

    async def follow(self, js: JetStreamContext) -> None:
        """Applies CUSTOMER events after ``self.sequence`` for ever (an ephemeral ordered consumer)."""
        queue: asyncio.Queue = asyncio.Queue()

        async def on_message(msg) -> None:  # noqa: ANN001
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

    async def apply(self, msgs: Sequence) -> None:  # noqa: ANN001
        members: set[int] = set()
        new_orders: list[int] = []
        rebuild = False
        for msg in msgs:
            event = decode(msg.subject, msg.data) if msg.subject in _known() else None
            if event is None:
                continue
            if msg.subject == "customer.import.completed.v1":
                rebuild = True
                continue
            member_id = getattr(event, "member_id", "") or getattr(event, "customer_id", "")
            if member_id.isdigit():
                members.add(int(member_id))
            for order_id in getattr(event, "new_order_ids", ()):
                new_orders.append(int(order_id))
            if getattr(event, "orders_changed", False):
                self.orders_changed()
        if rebuild:
            await self.build()
            return
        await self.refresh_members(members)
        if new_orders:
            await self.append_orders(new_orders)

    # --- evaluation

    async def evaluate(self, translation: Translation) -> se.Bitmap:
        await self._settle()
        async with self._lock:
            self._prepare(translation)
            index = self.index
        return await asyncio.to_thread(index.evaluate, translation.package)

    async def count(self, translation: Translation) -> int:
        await self._settle()
        async with self._lock:
            self._prepare(translation)
            index = self.index
        return await asyncio.to_thread(index.count, translation.package)

    def _prepare(self, translation: Translation) -> None:
        """Registers the unions the package names (cached until members change)."""
        present = set(self.index.bitmaps())
        for name, parts in translation.unions.items():
            if name in self._unions and name in present:
                continue
            union = se.Bitmap()
            for part in parts:
                if part in present:
                    union = union | self.index.evaluate(_bitmap_package(part))
            self.index.set_bitmap(name, union)
            self._unions[name] = union
        for name in translation.package_bitmaps():
            if name not in present and name not in self._unions:
                self.index.set_bitmap(name, se.Bitmap())  # a tag or mall nobody has yet

    # --- snapshots

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "crowd-index.bin"
        tmp = folder / "crowd-index.bin.tmp"
        self.index.save(tmp)
        tmp.replace(path)
        (folder / "crowd-index.json").write_text(json.dumps({"sequence": self.sequence,
                                                             "saved_at": datetime.now(UTC).isoformat()}))
        return path

    def restore(self, folder: Path) -> bool:
        path, meta = folder / "crowd-index.bin", folder / "crowd-index.json"
        if not path.exists() or not meta.exists():
            return False
        try:
            index = se.MemberIndex.load(path)
            sequence = int(json.loads(meta.read_text())["sequence"])
        except (ValueError, KeyError, OSError) as err:
            log.warning("crowd index snapshot unusable; rebuilding", error=one_line(err))
            return False
        self.index, self.sequence, self.built_at = index, sequence, datetime.now(UTC)
        self._unions.clear()
        return True


def _known() -> set[str]:
    from services.common.events import SUBJECT_TYPES

    return set(SUBJECT_TYPES)
