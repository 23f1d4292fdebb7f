"""The member download: the members a MemberFilter selects (as ListMembers does) as a CSV file.

Columns use the import's English header names where one exists, so a download can be edited and
imported again (the other columns are ignored by the import).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.customer.v1 import member_pb2
from crowdpack.customer.v1 import member_service_pb2 as mpb
from services.common.auth import Caller
from services.common.chunks import IN_LIST, chunks
from services.common.validation import aware
from services.customer.exports import csv_bytes
from services.customer.members.repository import MemberRepository, filter_clauses
from services.customer.models import Customer
from services.customer.scope import visible_members

HEADER = ["member_id", "phone", "email", "name", "real_name", "gender", "birthday", "wechat_openid",
          "wechat_unionid", "registration_mall_id", "registration_time", "card_number", "card_open_time",
          "card_open_mall_id", "card_open_channel", "level", "tags", "disabled", "review_status", "store_member",
          "points_balance", "spend_count", "spend_total_fen", "last_spend_time", "create_time"]
GENDER_TEXT = {member_pb2.GENDER_MALE: "male", member_pb2.GENDER_FEMALE: "female",
               member_pb2.GENDER_UNKNOWN: "unknown"}
REVIEW_TEXT = {member_pb2.REVIEW_STATUS_PENDING: "pending", member_pb2.REVIEW_STATUS_APPROVED: "approved",
               member_pb2.REVIEW_STATUS_REJECTED: "rejected"}


def _time(value: object) -> str:
    return aware(value).isoformat() if value is not None else ""  # type: ignore[arg-type]


async def export_members(session: AsyncSession, caller: Caller, f: mpb.MemberFilter, order_by: int, ascending: bool,
                         cap: int, crowd: ColumnElement[bool] | None = None) -> tuple[bytes, int, bool]:
    """CSV bytes (UTF-8 with a BOM), rows written, and whether more members matched than ``cap``.

    ``crowd``: the clause selecting the members the filter's crowd holds, if it has one."""
    repo = MemberRepository(session)
    where = [visible_members(caller), *filter_clauses(f)]
    if crowd is not None:
        where.append(crowd)
    members: Sequence[Customer] = await repo.page(where=where,
                                                  order_by=order_by, ascending=ascending, limit=cap + 1, after=None)
    truncated = len(members) > cap
    members = members[:cap]
    tags: dict[int, list[str]] = {}
    stats = {}
    ids = [m.id for m in members]
    for chunk in chunks(ids, IN_LIST):
        tags.update(await repo.tags_of(chunk))
        stats.update(await repo.stats_of(chunk))
    rows = []
    for m in members:
        s = stats.get(m.id)
        rows.append([
            m.id, m.phone, m.email, m.name, m.real_name, GENDER_TEXT.get(m.gender, ""),
            m.birthday.isoformat() if m.birthday else "", m.wechat_openid, m.wechat_unionid, m.registration_mall_id,
            _time(m.registered_at), m.card_number, _time(m.card_open_time), m.card_open_mall_id,
            member_pb2.OpenChannel.Name(m.card_open_channel) if m.card_opened else "", m.level,
            "|".join(tags.get(m.id, [])), "true" if m.disabled else "false", REVIEW_TEXT.get(m.review_status, ""),
            "true" if m.store_member else "false", s.points_balance if s else 0, s.spend_count if s else 0,
            s.spend_total_fen if s else 0, _time(s.last_spend_at) if s else "", _time(m.created_at)])
    return csv_bytes(HEADER, rows), len(rows), truncated
