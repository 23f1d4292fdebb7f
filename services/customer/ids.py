"""Lists of ids in requests: parsed once, the same way, by every feature that takes many at a time."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.errors import InvalidArgument
from services.common.validation import parse_int_id


def parse_ids(values: Sequence[str], field: str, maximum: int) -> list[int]:
    """Numeric ids, repeats dropped, order kept; at least one, at most ``maximum``."""
    if not values:
        raise InvalidArgument("name at least one", field=field)
    ids = list(dict.fromkeys(parse_int_id(v.strip(), field) for v in values))
    if len(ids) > maximum:
        raise InvalidArgument(f"at most {maximum} at a time", field=field)
    return ids
