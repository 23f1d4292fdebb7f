"""The ledger's view of malls and stores, kept from the customer service's events, and the check of the ids
a request names against it.

``mall_changed`` and ``store_changed`` upsert the full state an event carries (in the consumer's
transaction, with its dedupe record); an event older than what is stored changes nothing.

``Places`` is one transaction's read of the malls and stores some requests name. ``check`` refuses,
with INVALID_ARGUMENT naming the field, a mall the customer service never announced (or deleted), a
store likewise, a store of another mall than the one named, and a store named without its mall.
Entries a refund or a reversal copies from an earlier entry are not checked again: the history may
name a mall deleted since.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crowdpack.events.v1 import customer_events_pb2 as customer_events
from services.common.chunks import IN_LIST, chunks
from services.common.errors import InvalidArgument
from services.common.validation import aware
from services.ledger.models import MallState, StoreState

MALLS = MallState.__table__
STORES = StoreState.__table__
MALLS_OF = select(MALLS.c.mall_id, MALLS.c.deleted).where(MALLS.c.mall_id.in_(bindparam("ids", expanding=True)))
STORES_OF = select(STORES.c.store_id, STORES.c.mall_id, STORES.c.deleted).where(
    STORES.c.store_id.in_(bindparam("ids", expanding=True)))


def _time(message: customer_events.MallChanged | customer_events.StoreChanged) -> datetime | None:
    return aware(message.change_time.ToDatetime()) if message.HasField("change_time") else None


def _stale(when: datetime | None, stored: datetime | None) -> bool:
    return when is not None and stored is not None and when < aware(stored)


async def mall_changed(session: AsyncSession, event: customer_events.MallChanged) -> None:
    """customer.mall.changed: the mall's whole state."""
    when = _time(event)
    row = await session.get(MallState, event.mall_id)
    if row is None:
        row = MallState(mall_id=event.mall_id)
        session.add(row)
    elif _stale(when, row.changed_at):
        return
    row.name, row.timezone, row.deleted, row.changed_at = event.name, event.timezone, event.deleted, when


async def store_changed(session: AsyncSession, event: customer_events.StoreChanged) -> None:
    """customer.store.changed: the store's whole state."""
    when = _time(event)
    row = await session.get(StoreState, event.store_id)
    if row is None:
        row = StoreState(store_id=event.store_id)
        session.add(row)
    elif _stale(when, row.changed_at):
        return
    row.mall_id, row.name, row.category = event.mall_id, event.name, event.category
    row.business_format, row.brand, row.deleted, row.changed_at = (event.business_format, event.brand,
                                                                    event.deleted, when)


class Places:
    """The malls and stores one transaction has read: mall id -> deleted, store id -> (mall id, deleted)."""

    def __init__(self) -> None:
        self.malls: dict[str, bool] = {}
        self.stores: dict[str, tuple[str, bool]] = {}
        self._looked_up: set[tuple[str, str]] = set()

    def load(self, session: Session, places: Iterable[tuple[str, str]]) -> None:
        """Reads the (mall id, store id) pairs not read yet (either may be "")."""
        wanted = set(places) - self._looked_up
        if not wanted:
            return
        self._looked_up |= wanted
        malls = sorted({m for m, _ in wanted if m} - self.malls.keys())
        stores = sorted({s for _, s in wanted if s} - self.stores.keys())
        for chunk in chunks(malls, IN_LIST):
            self.malls.update((r.mall_id, bool(r.deleted)) for r in session.execute(MALLS_OF, {"ids": chunk}))
        for chunk in chunks(stores, IN_LIST):
            self.stores.update((r.store_id, (r.mall_id, bool(r.deleted)))
                               for r in session.execute(STORES_OF, {"ids": chunk}))

    def check(self, mall_id: str, store_id: str, *, mall_field: str = "mall_id",
              store_field: str = "store_id") -> None:
        if mall_id:
            deleted = self.malls.get(mall_id)
            if deleted is None:
                raise InvalidArgument(f"no mall {mall_id} (a mall created moments ago may not have reached the "
                                      "ledger yet)", field=mall_field)
            if deleted:
                raise InvalidArgument(f"mall {mall_id} is deleted", field=mall_field)
        if not store_id:
            return
        if not mall_id:
            raise InvalidArgument("is required when a store is named", field=mall_field)
        store = self.stores.get(store_id)
        if store is None:
            raise InvalidArgument(f"no store {store_id} (a store created moments ago may not have reached the "
                                  "ledger yet)", field=store_field)
        if store[0] != mall_id:
            raise InvalidArgument(f"store {store_id} belongs to mall {store[0]}, not {mall_id}", field=store_field)
        if store[1]:
            raise InvalidArgument(f"store {store_id} is deleted", field=store_field)

    def check_stores(self, store_ids: Iterable[str], mall_id: str, field: str) -> None:
        """Each store exists (not deleted) and, when ``mall_id`` is not "", is one of that mall's."""
        for i, store_id in enumerate(store_ids):
            store = self.stores.get(store_id)
            if store is None or store[1]:
                raise InvalidArgument(f"no store {store_id}", field=f"{field}[{i}]")
            if mall_id and store[0] != mall_id:
                raise InvalidArgument(f"store {store_id} belongs to mall {store[0]}, not {mall_id}",
                                      field=f"{field}[{i}]")


async def checked(session: AsyncSession, mall_id: str, store_id: str, *, mall_field: str = "mall_id",
                  store_field: str = "store_id") -> None:
    """``Places.check`` for one request from async code."""
    places = Places()
    await session.run_sync(lambda s: places.load(s, [(mall_id, store_id)]))
    places.check(mall_id, store_id, mall_field=mall_field, store_field=store_field)
