"""Every crowd condition kind, over generated data, answered by the segment engine and by plain SQL."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.common.db import Database
from services.customer.crowds.catalogue import load_catalogue
from services.customer.crowds.index import CrowdIndex
from services.customer.crowds.translate import Translator
from tests.support import crowd_data
from tests.support.crowd_sql import SqlCrowd

pytestmark = pytest.mark.database("customer")


MIGRATIONS = Path("services/customer/migrations")
TODAYS = [date(2026, 11, 1), date(2027, 2, 28), date(2028, 2, 29), date(2026, 12, 31), date(2026, 3, 15)]


@pytest.fixture
async def seeded(database_url):
    db = Database(database_url, MIGRATIONS)
    await db.migrate()
    ids = await crowd_data.seed(db, random.Random(11))
    index = CrowdIndex(db)
    await index.build()
    try:
        yield db, index, ids
    finally:
        await db.dispose()


async def check(db: Database, index: CrowdIndex, definition, today: date) -> int:
    async with db.read() as session:
        translation = Translator(await load_catalogue(session), today).translate(definition)
        expected = await SqlCrowd(session, today, ZoneInfo("Asia/Shanghai")).evaluate(definition)
    got = await index.evaluate(translation)
    assert sorted(got) == sorted(expected), (definition, today)
    assert await index.count(translation) == len(expected)
    return len(expected)


@pytest.mark.parametrize("kind", crowd_data.KINDS)
async def test_each_condition_kind_agrees_with_sql(seeded, kind):
    db, index, ids = seeded
    rng = random.Random(hash(kind) % 1000)
    sizes = []
    for i in range(12):
        sizes.append(await check(db, index, crowd_data.definition(rng, ids, [kind]), TODAYS[i % len(TODAYS)]))
    assert max(sizes) > 0  # the generated conditions are not all empty


async def test_random_packages_agree_with_sql(seeded):
    db, index, ids = seeded
    rng = random.Random(2026)
    sizes = [await check(db, index, crowd_data.definition(rng, ids), TODAYS[i % len(TODAYS)]) for i in range(120)]
    assert len(set(sizes)) > 10  # a real spread of answers, not all empty or all everyone
