"""The crowd index's vectorised date arithmetic agrees with the one-at-a-time definition."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from services.customer.crowds.columns import day_number, local_day
from services.customer.crowds.loader import grouped, local_days, month_day


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
                                  "Europe/Dublin", "UTC"])
def test_local_days_equal_local_day_one_by_one(zone):
    tz, rng = ZoneInfo(zone), random.Random(zone)
    # Random moments from 1900 to 2040, plus every second around this zone's transitions in 1987-1992 and 2026.
    moments = [rng.randint(-2_200_000_000, 2_200_000_000) for _ in range(20_000)]
    for year in (1987, 1988, 1991, 2026):
        start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
        for hour in range(0, 365 * 24, 6):
            base = start + hour * 3600
            moments += [base - 1, base, base + 1, base + 1799, base + 1800]
    seconds = np.array(moments, dtype=np.int64)
    expected = [local_day(datetime.fromtimestamp(s, UTC), tz) for s in moments]
    assert local_days(seconds, tz).tolist() == expected


def test_month_day_of_day_numbers_including_leap_days_and_before_1970():
    days = [date(1904, 2, 29), date(1969, 12, 31), date(1970, 1, 1), date(2000, 2, 29), date(2026, 12, 31)]
    days += [date(1900, 1, 1) + timedelta(days=n) for n in range(0, 60_000, 37)]
    got = month_day(np.array([day_number(d) for d in days]))
    assert got.tolist() == [d.month * 100 + d.day for d in days]


def test_grouped_gives_sorted_unique_members_per_key():
    pairs = np.array([[5, 2], [1, 2], [3, 7], [1, 2], [9, 7], [2, 1]])
    assert {k: v.tolist() for k, v in grouped(pairs).items()} == {1: [2], 2: [1, 5], 7: [3, 9]}
    assert grouped(np.zeros((0, 2), dtype=np.int64)) == {}
