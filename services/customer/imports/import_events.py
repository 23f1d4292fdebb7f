"""What an import batch announces and records: per member in normal mode, as the RPCs would (created, card opened,
updated, and the timeline entries), and per batch in fast mode (``customer.members.imported``).

Normal mode's are built as rows and messages on the batch's ``Staging``, not through the RPCs' ORM objects: the
same messages and details at a fraction of the cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_pb2
from crowdpack.events.v1 import customer_events_pb2 as event_pb
from services.common.chunks import chunks
from services.common.outbox import add_event
from services.common.validation import to_timestamp
from services.customer import member_events, timeline
from services.customer.imports.plan import IMPORT_CHANNEL, STATE, JobContext
from services.customer.imports.writes import Staging
from services.customer.member_changes import announce_changes, record_changes
from services.customer.models import OutboxEvent

# Most members one customer.members.imported event carries (a fast batch may make several).
IMPORTED_PER_EVENT = 10_000


def created_events(stage: Staging, ctx: JobContext, created: list[dict[str, Any]], now: datetime, at: Any) -> None:
    """What CreateMember and OpenCard announce and record (member_events.py, timeline.record), per member;
    ``at`` is ``now`` in the driver's form."""
    actor = ctx.operator_id
    detail = json.dumps({"job_id": ctx.job_id, "source": "import"}, sort_keys=True)
    channel = member_pb2.OpenChannel.Name(IMPORT_CHANNEL)
    entries, Created, Opened, stamp = (  # noqa: N806 - classes keep class-style names
        stage.entries, event_pb.MemberCreated, event_pb.MemberCardOpened, to_timestamp)
    create_time = stamp(now)
    for v in created:
        member_id = v["id"]
        entries.append((member_id, "created", detail, actor, at))
        stage.event(Created(member_id=str(member_id), phone=v["phone"] or "", email=v["email"] or "",
                            create_time=create_time, registration_mall_id=str(v["registration_mall_id"] or ""),
                            level=v["level"]))
        if v["card_opened"]:
            stage.entry(member_id, "card_opened", actor, at, card_number=v["card_number"],
                        mall_id=v["card_open_mall_id"], channel=channel)
            stage.event(Opened(member_id=str(member_id), card_number=v["card_number"] or "",
                               mall_id=str(v["card_open_mall_id"] or ""), channel=channel,
                               open_time=stamp(v["card_open_time"])))


def imported_events(session: AsyncSession, ctx: JobContext, tuples: list[tuple[Any, ...]], columns: Sequence[str],
                    now: datetime) -> None:
    """Fast mode's announcement of the members a batch created, for the ledger's accounts and scope and the
    crowd index."""
    level_at = columns.index("level")
    malls_at = [columns.index(c) if c in columns else None for c in ("registration_mall_id", "card_open_mall_id")]

    def malls(part: Sequence[tuple[Any, ...]], at: int | None) -> list[str]:
        return [] if at is None else [str(row[at] or "") for row in part]

    for part in chunks(tuples, IMPORTED_PER_EVENT):
        add_event(session, OutboxEvent, event_pb.MembersImported(
            job_id=str(ctx.job_id), member_ids=[str(row[0]) for row in part],
            levels=[row[level_at] for row in part], create_time=to_timestamp(now),
            registration_mall_ids=malls(part, malls_at[0]), card_open_mall_ids=malls(part, malls_at[1])))


def updated_events(session: AsyncSession, ctx: JobContext, ids: list[int], now: datetime) -> None:
    """Fast mode's announcement of the existing members a batch changed or tagged, for the crowd index."""
    for part in chunks(ids, IMPORTED_PER_EVENT):
        add_event(session, OutboxEvent, event_pb.MembersImported(
            job_id=str(ctx.job_id), updated_member_ids=[str(i) for i in part], create_time=to_timestamp(now)))


def update_events(stage: Staging, ctx: JobContext, changed: dict[int, dict[str, Any]],
                  existing: dict[int, Any]) -> None:
    """Normal mode: what UpdateMember (and OpenCard, for a card the file opens) record and announce, per member,
    by the same rule (member_changes.py); the timeline entries add the job and ``source="import"``."""
    actor = ctx.operator_id
    for customer_id, changes in changed.items():
        cur = existing[customer_id]
        member = SimpleNamespace(**{**{k: getattr(cur, k) for k in STATE}, "card_open_channel": 0, **changes})
        opened = changes.get("card_opened") is True
        fields = [k for k in changes if k != "store_member" and not (opened and k in ("card_opened",
                                                                                      "card_open_channel"))]
        # The staging collects the rows the batch writes in bulk (it adds, as a session does).
        old_new = {k: (getattr(cur, k, None), changes[k]) for k in fields}
        record_changes(stage, customer_id, old_new, actor, source="import", job_id=ctx.job_id)
        if opened:
            timeline.record(stage, customer_id, "card_opened", actor,
                            card_number=member.card_number, mall_id=member.card_open_mall_id,
                            channel="OPEN_CHANNEL_IMPORT")
            member_events.card_opened(stage, member)  # type: ignore[arg-type]  # the stored state stands in
        if fields:
            announce_changes(stage, member, fields, actor)  # type: ignore[arg-type]  # the stored state stands in


def tag_events(stage: Staging, ctx: JobContext, customer_ids: list[int], now: datetime, at: Any) -> None:
    """Normal mode: what tagging.add_tags records and announces for each pair it adds."""
    tag = ctx.tag
    assert tag is not None
    actor = ctx.operator_id
    detail = json.dumps({"tag": tag.name}, ensure_ascii=False, sort_keys=True)
    change_time, tag_id = to_timestamp(now), str(tag.id)
    for customer_id in customer_ids:
        stage.entries.append((customer_id, "tag_added", detail, actor, at))
        stage.event(event_pb.CustomerTagged(customer_id=str(customer_id), tag_id=tag_id, tag_name=tag.name,
                                            operator_id=actor, change_time=change_time))
