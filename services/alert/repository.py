"""The queries behind AlertService: rules, alerts, the whitelist, digests, and the malls and members the
service projects from CUSTOMER."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, false, func, not_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.models import Alert, AlertOrder, AlertRule, Digest, MallView, MemberView, StoreView, WhitelistEntry
from services.common.db import rowcount

MEMBER_DISABLED = pb.ALERT_STATE_MEMBER_DISABLED


async def bump_mall(session: AsyncSession, mall_id: str) -> MallView:
    """The mall's row (made if its own event has not arrived yet), its revision moved on."""
    mall = await session.get(MallView, mall_id)
    if mall is None:
        mall = MallView(mall_id=mall_id, name="", timezone="Asia/Shanghai", deleted=False, revision=0)
        session.add(mall)
    mall.revision += 1
    return mall


async def close_open_alerts(session: AsyncSession, member_id: str, state: int) -> int:
    """Moves the member's open alerts to ``state``; returns how many."""
    return rowcount(await session.execute(update(Alert).where(
        Alert.member_id == member_id, Alert.state == pb.ALERT_STATE_OPEN).values(state=state)))


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, rule_id: int) -> AlertRule | None:
        return await self.session.get(AlertRule, rule_id)

    async def add(self, rule: AlertRule) -> AlertRule:
        self.session.add(rule)
        await self.session.flush()
        return rule

    async def live_count(self, mall_id: str) -> int:
        count = await self.session.scalar(select(func.count()).select_from(AlertRule).where(
            AlertRule.mall_id == mall_id, AlertRule.deleted_at.is_(None)))
        return count or 0

    async def page(self, mall_id: str, limit: int, after: int) -> Sequence[AlertRule]:
        """A mall's live rules by id, after ``after``."""
        return (await self.session.scalars(select(AlertRule).where(
            AlertRule.mall_id == mall_id, AlertRule.deleted_at.is_(None), AlertRule.id > after)
            .order_by(AlertRule.id).limit(limit))).all()

    async def store_malls(self, store_ids: Sequence[str]) -> dict[str, str]:
        """The mall of each live store among ``store_ids`` (unknown and deleted stores are left out)."""
        return dict((await self.session.execute(
            select(StoreView.store_id, StoreView.mall_id).where(StoreView.store_id.in_(store_ids),
                                                                StoreView.deleted.is_(False)))).all())


class MallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, mall_id: str) -> MallView | None:
        return await self.session.get(MallView, mall_id)

    async def zones(self) -> dict[str, str]:
        """Each known mall's time zone name."""
        return {mall_id: tz for mall_id, tz in await self.session.execute(select(MallView.mall_id, MallView.timezone))}


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def mark_disabled(self, member_id: str) -> None:
        """The member's projection says disabled (made if the member's own event has not arrived yet)."""
        member = await self.session.get(MemberView, member_id)
        if member is None:
            self.session.add(MemberView(member_id=member_id, virtual=False, disabled=True, store_member=False,
                                        deleted=False))
        else:
            member.disabled = True


class DigestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, mall_id: str, limit: int, before: str | None) -> Sequence[Digest]:
        """A mall's digests, newest local date first, before ``before``."""
        query = select(Digest).where(Digest.mall_id == mall_id)
        if before is not None:
            query = query.where(Digest.local_date < before)
        return (await self.session.scalars(query.order_by(Digest.local_date.desc()).limit(limit))).all()


class WhitelistRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: str) -> WhitelistEntry | None:
        return await self.session.get(WhitelistEntry, member_id)

    async def add(self, entry: WhitelistEntry) -> WhitelistEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def remove(self, member_id: str) -> None:
        await self.session.execute(delete(WhitelistEntry).where(WhitelistEntry.member_id == member_id))

    async def page(self, limit: int, after: tuple[datetime, str] | None) -> Sequence[WhitelistEntry]:
        """Newest first; keyset on (created_at, member_id)."""
        query = select(WhitelistEntry).order_by(WhitelistEntry.created_at.desc(), WhitelistEntry.member_id.desc())
        if after is not None:
            query = query.where(tuple_(WhitelistEntry.created_at, WhitelistEntry.member_id) < after)
        return (await self.session.scalars(query.limit(limit))).all()


@dataclass(frozen=True)
class AlertQuery:
    """What ListAlerts and ExportAlerts select; ``malls`` None means every mall."""

    malls: frozenset[str] | None
    store_member: bool | None = None
    member_disabled: bool | None = None
    rule_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    state: int = 0


class AlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _select(self, q: AlertQuery) -> Select[Alert, bool, bool]:
        store_member = func.coalesce(MemberView.store_member, false())
        disabled = or_(Alert.state == MEMBER_DISABLED, func.coalesce(MemberView.disabled, false()))
        query = (select(Alert, store_member, disabled)
                 .outerjoin(MemberView, MemberView.member_id == Alert.member_id))
        if q.malls is not None:
            query = query.where(Alert.mall_id.in_(q.malls))
        if q.store_member is not None:
            query = query.where(store_member if q.store_member else not_(store_member))
        if q.member_disabled is not None:
            query = query.where(disabled if q.member_disabled else not_(disabled))
        if q.rule_id is not None:
            query = query.where(Alert.rule_id == q.rule_id)
        if q.start is not None:
            query = query.where(Alert.first_triggered_at >= q.start)
        if q.end is not None:
            query = query.where(Alert.first_triggered_at < q.end)
        if q.state:
            query = query.where(Alert.state == q.state)
        return query

    async def page(self, q: AlertQuery, limit: int, before_id: int | None) -> Sequence[tuple[Alert, bool, bool]]:
        """Newest first (by id)."""
        query = self._select(q)
        if before_id is not None:
            query = query.where(Alert.id < before_id)
        return (await self.session.execute(query.order_by(Alert.id.desc()).limit(limit))).all()

    async def alert(self, alert_id: int) -> Alert | None:
        """The alert's row alone."""
        return await self.session.get(Alert, alert_id)

    async def get(self, alert_id: int) -> tuple[Alert, bool, bool] | None:
        """The alert with its member's store-member and disabled flags."""
        row = (await self.session.execute(self._select(AlertQuery(None)).where(Alert.id == alert_id))).first()
        return tuple(row) if row is not None else None  # type: ignore[return-value]  # the select's three columns

    async def of_member(self, mall_id: str, member_id: str) -> Sequence[tuple[Alert, bool, bool]]:
        return (await self.session.execute(self._select(AlertQuery(frozenset([mall_id]))).where(
            Alert.member_id == member_id).order_by(Alert.id))).all()

    async def orders(self, alert_ids: Sequence[int]) -> dict[int, list[AlertOrder]]:
        rows = (await self.session.scalars(select(AlertOrder).where(AlertOrder.alert_id.in_(alert_ids)).order_by(
            AlertOrder.alert_id, AlertOrder.condition, AlertOrder.occur_time, AlertOrder.order_id))).all()
        found: dict[int, list[AlertOrder]] = {}
        for row in rows:
            found.setdefault(row.alert_id, []).append(row)
        return found
