"""How the order handler binds a new order's time: the text it writes on SQLite is the text SQLAlchemy's DateTime
writes, which the windows compare (``occur_time >= since``) and parse back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite

from services.alert.ordering import MEMBER_ORDER, _order_binds, sqlite_time


def test_sqlite_time_is_the_text_of_sqlalchemys_datetime():
    dialect = sqlite.dialect()
    processor = MEMBER_ORDER.c.occur_time.type.dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    rng = random.Random(3)
    start = datetime(1, 1, 1, tzinfo=UTC)
    times = [start, datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)]
    times += [start + timedelta(microseconds=rng.randrange(315_537_897_600_000_000)) for _ in range(2_000)]
    times += [t.replace(microsecond=0) for t in times[3:100]]
    for when in times:
        assert sqlite_time(when) == processor(when)
    # What the windows compare as text orders as the times do.
    assert sorted(times, key=sqlite_time) == sorted(times)


def test_a_new_order_binds_as_the_column_types_bind():
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
        not_refunded, bind_time = _order_binds(dialect)
        flag = MEMBER_ORDER.c.fully_refunded.type.dialect_impl(dialect).bind_processor(dialect)
        assert not_refunded == (flag(False) if flag is not None else False)
        when = datetime(2026, 3, 1, 12, 30, 5, 123_456, tzinfo=UTC)
        processor = MEMBER_ORDER.c.occur_time.type.dialect_impl(dialect).bind_processor(dialect)
        assert bind_time(when) == (processor(when) if processor is not None else when)
