"""The business customer grade: every boundary of the cascade, and the gaps the manual's table leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from services.customer.business.codes import code_day, format_code
from services.customer.business.grade import compute_grade

A, B, C, D = (pb.BUSINESS_CUSTOMER_GRADE_A, pb.BUSINESS_CUSTOMER_GRADE_B, pb.BUSINESS_CUSTOMER_GRADE_C,
              pb.BUSINESS_CUSTOMER_GRADE_D)
POTENTIAL, INTENT, DEAL, LOST = (pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL, pb.BUSINESS_CUSTOMER_STATUS_INTENT,
                                 pb.BUSINESS_CUSTOMER_STATUS_DEAL, pb.BUSINESS_CUSTOMER_STATUS_LOST)
NOT_POTENTIAL = (INTENT, DEAL, LOST)


def yuan(amount: int) -> int:
    return amount * 100


@pytest.mark.parametrize("status", NOT_POTENTIAL)
@pytest.mark.parametrize(("revenue_fen", "years", "grade"), [
    # A: revenue strictly above 1,000,000 yuan and strictly more than 3 years.
    (yuan(1_000_000) + 1, 4, A),
    (yuan(1_000_000), 4, B),           # exactly 1,000,000 is not "above": B
    (yuan(1_000_000) + 1, 3, B),       # exactly 3 years is not "more than 3": B
    (yuan(50_000_000), 40, A),
    # B: at least 500,000 yuan and at least 1 year.
    (yuan(500_000), 1, B),
    (yuan(500_000) - 1, 1, C),         # one fen short of B
    (yuan(500_000), 0, C),             # no full year yet
    (yuan(999_999), 3, B),
    # C: at least 100,000 yuan, any years.
    (yuan(100_000), 0, C),
    (yuan(100_000), 50, C),
    (yuan(100_000) - 1, 50, D),        # one fen short of C
    # D: the rest.
    (0, 0, D),
    (yuan(99_999), 10, D),
])
def test_every_boundary(status, revenue_fen, years, grade):
    assert compute_grade(status, revenue_fen, years) == grade


@pytest.mark.parametrize(("revenue_fen", "years", "grade"), [
    (yuan(2_000_000), 2, B),   # big revenue but short cooperation: not A (years), is B
    (yuan(2_000_000), 0, C),   # big revenue, first year: C
    (yuan(800_000), 0, C),     # B revenue, first year: C
    (yuan(800_000), 5, B),     # B revenue, long cooperation: B (revenue caps it)
    (yuan(300_000), 10, C),    # C revenue, long cooperation: C
    (yuan(50_000), 10, D),     # small revenue whatever the years
])
def test_the_gaps_of_the_manuals_table_each_get_one_grade(revenue_fen, years, grade):
    assert compute_grade(DEAL, revenue_fen, years) == grade


@pytest.mark.parametrize(("revenue_fen", "years"), [(yuan(5_000_000), 10), (yuan(600_000), 2), (yuan(200_000), 0)])
def test_a_potential_customer_is_always_d(revenue_fen, years):
    assert compute_grade(POTENTIAL, revenue_fen, years) == D
    assert compute_grade(INTENT, revenue_fen, years) != D


@given(st.sampled_from((POTENTIAL, *NOT_POTENTIAL)), st.integers(0, 9 * 10**15), st.integers(0, 200),
       st.integers(0, 9 * 10**15), st.integers(0, 200))
def test_more_revenue_or_years_never_lowers_the_grade(status, revenue, years, more_revenue, more_years):
    # Grades are ordered A=1 < B < C < D=4: a better grade has a smaller number.
    assert compute_grade(status, revenue + more_revenue, years + more_years) <= compute_grade(status, revenue, years)


def test_code_day_is_the_china_calendar_day_and_the_sequence_has_four_digits():
    assert code_day(datetime(2026, 3, 1, 15, 59, tzinfo=UTC)) == "20260301"
    assert code_day(datetime(2026, 3, 1, 16, 0, tzinfo=UTC)) == "20260302"  # midnight in Beijing
    assert format_code("20260302", 7) == "CUS202603020007"
    assert format_code("20260302", 9999) == "CUS202603029999"
