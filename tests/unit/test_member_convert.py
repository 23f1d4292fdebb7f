"""The Member made in place from row values (alone, or in a reply's page) is the Member made the plain way (every part
built, then passed in)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crowdpack.customer.v1 import member_pb2 as pb
from crowdpack.customer.v1 import member_service_pb2 as service_pb
from services.customer.members.convert import MEMBER_COLUMNS, STATS_SHOWN, member_from_values


def timestamp(dt: datetime | None) -> Timestamp | None:
    if dt is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC))
    return ts


def plain_member(v: dict[str, Any], s: dict[str, Any] | None, tags: list[str], malls: list[int]) -> pb.Member:
    stats = None if s is None else pb.MemberStats(
        points_balance=s["points_balance"], red_packet_balance_fen=s["red_packet_balance_fen"],
        stored_balance_fen=s["stored_balance_fen"], spend_count=s["spend_count"], spend_total_fen=s["spend_total_fen"],
        first_spend_time=timestamp(s["first_spend_at"]), last_spend_time=timestamp(s["last_spend_at"]),
        cumulative_spend_fen=s["cumulative_spend_fen"], online_count=s["online_count"],
        online_total_fen=s["online_total_fen"], online_last_time=timestamp(s["online_last_at"]),
        offline_count=s["offline_count"], offline_total_fen=s["offline_total_fen"],
        offline_last_time=timestamp(s["offline_last_at"]))
    text = {k: v[k] or "" for k in ("phone", "email", "avatar_url", "wechat_openid", "wechat_unionid", "douyin_id",
                                     "alipay_id", "xiaohongshu_id", "real_name")}
    return pb.Member(
        member_id=str(v["id"]), kind=v["kind"], name=v["name"], gender=v["gender"],
        birthday=v["birthday"].isoformat() if v["birthday"] else "",
        registration_time=timestamp(v["registered_at"]), registration_mall_id=str(v["registration_mall_id"] or ""),
        card=pb.MemberCard(opened=v["card_opened"], card_number=v["card_number"] or "",
                           open_time=timestamp(v["card_open_time"]), open_mall_id=str(v["card_open_mall_id"] or ""),
                           open_channel=v["card_open_channel"], promotion_channel=v["promotion_channel"],
                           open_scene=v["open_scene"]),
        level=v["level"], level_frozen=v["level_frozen"], level_expire_time=timestamp(v["level_expires_at"]),
        group_id=str(v["group_id"] or ""), tags=tags, disabled=v["disabled"], review_status=v["review_status"],
        store_member=v["store_member"], virtual=v["virtual"], stats=stats,
        interaction_mall_ids=[str(m) for m in malls], create_time=timestamp(v["created_at"]),
        update_time=timestamp(v["updated_at"]), **text)


def test_member_made_in_place_is_the_plain_member() -> None:
    rng = random.Random(17)

    def when() -> datetime | None:
        return rng.choice([None, datetime(1970, 1, 1), datetime(1969, 12, 31, 23, 59, 59, 999_999),
                           datetime(2020, 1, 1) + timedelta(microseconds=rng.randrange(10**14)),
                           datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**14))])

    def text() -> str | None:
        return rng.choice([None, "", "a", "会员 7"])

    def ident() -> int | None:
        return rng.choice([None, 1, 2**40])

    def count() -> int:
        return rng.choice([0, 1, 9_000_000_000_000_000, -20])

    page = service_pb.ListMembersResponse()
    for i in range(600):
        zero = i % 3 == 0  # a stats row that is all zeros and no times (the stats are there all the same)
        v: dict[str, Any] = {
            "id": rng.randrange(1, 2**40), "kind": rng.choice([1, 2]), "phone": text(), "email": text(),
            "name": rng.choice(["", "王"]), "real_name": text(), "gender": rng.randrange(4),
            "birthday": rng.choice([None, date(1990, 2, 3)]), "avatar_url": text(), "wechat_openid": text(),
            "wechat_unionid": text(), "douyin_id": text(), "alipay_id": text(), "xiaohongshu_id": text(),
            "registered_at": when(), "registration_mall_id": ident(), "card_opened": rng.random() < 0.5,
            "card_number": text(), "card_open_time": when(), "card_open_mall_id": ident(),
            "card_open_channel": rng.randrange(3), "promotion_channel": rng.choice(["", "x"]),
            "open_scene": rng.choice(["", "y"]), "level": rng.randrange(11), "level_frozen": rng.random() < 0.5,
            "level_expires_at": when(), "group_id": ident(), "disabled": rng.random() < 0.5,
            "review_status": rng.randrange(4), "store_member": rng.random() < 0.5, "virtual": rng.random() < 0.5,
            "created_at": when(), "updated_at": when()}
        s: dict[str, Any] | None = rng.choice([None, {
            "customer_id": v["id"], "points_balance": count(), "red_packet_balance_fen": count(),
            "stored_balance_fen": count(), "spend_count": rng.choice([0, 3]), "spend_total_fen": count(),
            "first_spend_at": when(), "last_spend_at": when(), "cumulative_spend_fen": count(),
            "online_count": rng.choice([0, 2]), "online_total_fen": count(), "online_last_at": when(),
            "offline_count": rng.choice([0, 5]), "offline_total_fen": count(), "offline_last_at": when()}])
        if zero and s is not None:
            s = {c: v["id"] if c == "customer_id" else 0 if c.endswith(("_fen", "_count", "_balance")) else None
                 for c in STATS_SHOWN}
        tags = rng.choice([[], ["a"], ["b", "c"]])
        malls = rng.choice([[], [3], [1, 2**40]])
        stats_values = (None,) * len(STATS_SHOWN) if s is None else tuple(s[c] for c in STATS_SHOWN)
        values = tuple(v[c] for c in MEMBER_COLUMNS)
        stats = rng.choice([stats_values, None]) if s is None else stats_values
        made = member_from_values(values, stats, tags=tags, interaction_mall_ids=malls)
        plain = plain_member(v, s, tags, malls)
        assert made == plain
        # Made as the last member of a reply's page: the same member, where it was made, after those made before.
        before = len(page.members)
        into = member_from_values(values, stats, tags=tags, interaction_mall_ids=malls, into=page.members)
        assert len(page.members) == before + 1 and page.members[-1] is into and into == plain
        assert made.SerializeToString(deterministic=True) == plain.SerializeToString(deterministic=True)
        # Presence, which equality of the bytes already implies, said outright: the card always, the stats with a row.
        assert made.HasField("card") and made.HasField("stats") == (s is not None)
        assert made.HasField("create_time") == (v["created_at"] is not None)
