"""What every feature's service holds: the database, the idempotency records and the clock.

A feature package (members, organization, ...) has a servicer (parses the request, calls the
service, converts the answer), a ``service.py`` (the domain operations; each owns its transaction,
a mutation through ``@idempotent("RpcName")``) and a repository (the queries).
"""

from __future__ import annotations

from services.common.clock import Clock, utcnow
from services.common.db import Database
from services.common.idempotency import IdempotencyMixin
from services.customer.models import IdempotencyRecord


class FeatureService:
    idempotency: type[IdempotencyMixin] = IdempotencyRecord

    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock
