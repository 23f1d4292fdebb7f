"""The business customer grade: always computed from revenue, cooperation years and status.

The manual's table leaves gaps (revenue above 1,000,000 yuan with 1-3 years, revenue of
500,000-1,000,000 with less than a year, ...). The rule here is a cascade, checked from A
down, so every input has exactly one grade; docs/customer-grades.md has the worked table.

    A  revenue >  1,000,000 yuan  and  years >  3
    B  revenue >=   500,000 yuan  and  years >= 1
    C  revenue >=   100,000 yuan
    D  everything else, and always while the status is potential
"""

from __future__ import annotations

from crowdpack.customer.v1 import business_customer_service_pb2 as pb

FEN_PER_YUAN = 100
A_REVENUE_FEN = 1_000_000 * FEN_PER_YUAN  # strictly more
A_YEARS = 3  # strictly more
B_REVENUE_FEN = 500_000 * FEN_PER_YUAN  # at least
B_YEARS = 1  # at least
C_REVENUE_FEN = 100_000 * FEN_PER_YUAN  # at least

# The inputs that trigger a recomputation when they change.
GRADE_INPUTS = frozenset({"annual_revenue_fen", "cooperation_years", "status"})


def compute_grade(status: int, annual_revenue_fen: int, cooperation_years: int) -> int:
    """The BusinessCustomerGrade for these inputs."""
    if status == pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL:
        return pb.BUSINESS_CUSTOMER_GRADE_D
    if annual_revenue_fen > A_REVENUE_FEN and cooperation_years > A_YEARS:
        return pb.BUSINESS_CUSTOMER_GRADE_A
    if annual_revenue_fen >= B_REVENUE_FEN and cooperation_years >= B_YEARS:
        return pb.BUSINESS_CUSTOMER_GRADE_B
    if annual_revenue_fen >= C_REVENUE_FEN:
        return pb.BUSINESS_CUSTOMER_GRADE_C
    return pb.BUSINESS_CUSTOMER_GRADE_D
