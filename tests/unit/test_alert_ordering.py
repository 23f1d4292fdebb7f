"""How the order handler binds a new order's fields: as the column types bind them (``bulk.column_binder``). On
SQLite the time is text that the windows compare (``occur_time >= since``) and parse back, so its order is the
times' order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite

from services.alert.ordering import MEMBER_ORDER
from services.common.bulk import column_binder


def test_a_new_orders_time_binds_as_sqlalchemys_datetime_and_sorts_as_the_times():
    rng = random.Random(3)
    start = datetime(1, 1, 1, tzinfo=UTC)
    times = [start, datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)]
    times += [start + timedelta(microseconds=rng.randrange(315_537_897_600_000_000)) for _ in range(2_000)]
    times += [t.replace(microsecond=0) for t in times[3:100]]
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
        processor = MEMBER_ORDER.c.occur_time.type.dialect_impl(dialect).bind_processor(dialect)
        bind = column_binder(dialect, MEMBER_ORDER, "occur_time")
        for when in times:
            assert bind(when) == (processor(when) if processor is not None else when)
        flag = MEMBER_ORDER.c.fully_refunded.type.dialect_impl(dialect).bind_processor(dialect)
        assert column_binder(dialect, MEMBER_ORDER, "fully_refunded")(False) == (
            flag(False) if flag is not None else False)
    # What the windows compare as text orders as the times do.
    sqlite_bind = column_binder(sqlite.dialect(), MEMBER_ORDER, "occur_time")
    assert sorted(times, key=sqlite_bind) == sorted(times)
