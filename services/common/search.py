"""Search terms in SQL LIKE patterns, with LIKE's wildcards (``%``, ``_``) and the escape character taken literally.

A user searching for "%" or "_" means those characters, not "anything": every LIKE built from user
input goes through ``contains_pattern`` (or SQLAlchemy's ``autoescape=True`` for prefixes) with
``escape=LIKE_ESCAPE``.
"""

from __future__ import annotations

LIKE_ESCAPE = "\\"


def escape_like(term: str) -> str:
    return term.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def contains_pattern(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere (use with ``escape=LIKE_ESCAPE``)."""
    return f"%{escape_like(term)}%"
