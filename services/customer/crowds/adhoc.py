"""A crowd given inline rather than saved as a package (a member list's filter), evaluated over the index."""

from __future__ import annotations

from crowdpack.customer.v1 import crowd_pb2
from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.errors import NotFound
from services.customer.crowds.catalogue import translate
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.repository import CrowdRepository


class AdHocCrowds:
    def __init__(self, db: Database, index: CrowdIndex, clock: Clock = utcnow) -> None:
        self.db = db
        self.index = index
        self.clock = clock

    async def member_ids(self, mall_id: int, definition: crowd_pb2.CrowdDefinition, *, mall_field: str,
                         field: str) -> list[int]:
        """The ids of the members in ``definition`` for mall ``mall_id``; errors name ``mall_field`` or ``field``."""
        async with self.db.read() as session:
            if not await CrowdRepository(session).mall_exists(mall_id):
                raise NotFound(f"no mall {mall_id}", field=mall_field)
            translation = await translate(session, mall_id, definition, self.clock(), field)
        return (await self.index.evaluate(translation)).to_numpy().tolist()
