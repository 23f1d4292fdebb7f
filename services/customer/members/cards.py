"""Member card numbers: unique, generated, with a Luhn check digit so a mistyped number is caught."""

from __future__ import annotations

PREFIX = "88"


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card_number(member_id: int) -> str:
    """16 digits: 88, the member id zero-padded to 13, and a check digit. Unique because ids are."""
    body = f"{PREFIX}{member_id:013d}"
    return body + luhn_digit(body)


def is_valid(number: str) -> bool:
    return len(number) >= 2 and number.isdigit() and luhn_digit(number[:-1]) == number[-1]
