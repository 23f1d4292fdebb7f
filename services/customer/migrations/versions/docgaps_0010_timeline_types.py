"""Timeline entries' fields in one type each: ids (``*_id``, and a changed id field's ``from`` and ``to``)
become strings ("" for none), and the import's attribute changes name ``from`` and ``to`` (not ``old``
and ``new``), as ``services/customer/timeline.py`` now writes them.

A data migration over ``timeline_entry.detail`` (JSON text), in pages by id; entries already in shape are
left alone. The downgrade keeps the new shape (it is what the code reads either way).

Revision ID: docgaps_0010_timeline_types
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "docgaps_0010_timeline_types"
down_revision = "0001"  # timeline_entry
PAGE = 1000


def _is_id(key: str) -> bool:
    return key == "id" or key.endswith("_id")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def reshaped(detail: dict[str, Any]) -> dict[str, Any]:
    out = dict(detail)
    if "field" in out:
        for old, new in (("old", "from"), ("new", "to")):
            if old in out and new not in out:
                out[new] = out.pop(old)
    for key, value in out.items():
        if _is_id(key):
            out[key] = _text(value)
    if _is_id(str(out.get("field", ""))):
        for side in ("from", "to"):
            if side in out:
                out[side] = _text(out[side])
    return out


def upgrade() -> None:
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, detail FROM timeline_entry WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": PAGE}).all()
        if not rows:
            return
        changed = []
        for entry_id, text in rows:
            try:
                detail = json.loads(text or "{}")
            except ValueError:
                continue
            if not isinstance(detail, dict):
                continue
            new = reshaped(detail)
            if new != detail:
                changed.append({"id": entry_id, "d": json.dumps(new, ensure_ascii=False, sort_keys=True)})
        if changed:
            conn.execute(sa.text("UPDATE timeline_entry SET detail = :d WHERE id = :id"), changed)
        last = rows[-1][0]


def downgrade() -> None:
    pass
