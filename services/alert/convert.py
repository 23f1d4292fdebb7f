"""Rows to messages: rules, alerts (with their orders), whitelist entries and digests."""

from __future__ import annotations

from crowdpack.alert.v1 import alert_service_pb2 as pb
from services.alert.evaluation import conditions_of
from services.alert.models import Alert, AlertOrder, AlertRule, Digest, WhitelistEntry
from services.common.validation import enum_of, to_timestamp


def rule_to_proto(rule: AlertRule) -> pb.AlertRule:
    def window(enabled: bool, days: int | None, count: int | None, paid: int | None) -> pb.WindowCondition:
        w = pb.WindowCondition(enabled=enabled, days=days or 0)
        if count is not None:
            w.min_order_count = count
        if paid is not None:
            w.min_paid_amount = paid
        return w

    return pb.AlertRule(
        rule_id=str(rule.id), mall_id=rule.mall_id, name=rule.name,
        scope=pb.StoreScope(kind=enum_of(pb.StoreScopeKind, rule.scope_kind), values=list(rule.scope_values)),
        single_order=pb.SingleOrderCondition(enabled=rule.single_enabled, min_paid_amount=rule.single_min_paid or 0),
        any_store=window(rule.any_enabled, rule.any_days, rule.any_min_count, rule.any_min_paid),
        scope_total=window(rule.total_enabled, rule.total_days, rule.total_min_count, rule.total_min_paid),
        creator_id=rule.creator_id, create_time=to_timestamp(rule.created_at), editor_id=rule.editor_id,
        update_time=to_timestamp(rule.updated_at),
        evaluation=pb.RuleEvaluation(
            state=enum_of(pb.EvaluationState, rule.eval_state), members_total=rule.eval_total,
            members_done=rule.eval_done,
            alerts_raised=rule.eval_raised, start_time=to_timestamp(rule.eval_started_at),
            finish_time=to_timestamp(rule.eval_finished_at)))


def alert_to_proto(alert: Alert, store_member: bool, disabled: bool,
                   orders: list[AlertOrder] | None = None) -> pb.Alert:
    return pb.Alert(
        alert_id=str(alert.id), mall_id=alert.mall_id, member_id=alert.member_id, rule_id=str(alert.rule_id),
        rule_name=alert.rule_name, conditions=[enum_of(pb.ConditionKind, c) for c in conditions_of(alert.conditions)],
        state=enum_of(pb.AlertState, alert.state),
        store_member=bool(store_member), member_disabled=bool(disabled),
        first_trigger_time=to_timestamp(alert.first_triggered_at),
        last_trigger_time=to_timestamp(alert.last_triggered_at), order_count=alert.order_count,
        orders=[pb.AlertOrder(order_id=o.order_id, store_id=o.store_id, paid_amount=o.paid_amount,
                              occur_time=to_timestamp(o.occur_time), condition=enum_of(pb.ConditionKind, o.condition))
                for o in orders or ()])


def entry_to_proto(entry: WhitelistEntry) -> pb.WhitelistEntry:
    return pb.WhitelistEntry(member_id=entry.member_id, reason=entry.reason, operator_id=entry.operator_id,
                             create_time=to_timestamp(entry.created_at))


def digest_to_proto(d: Digest) -> pb.Digest:
    return pb.Digest(digest_id=d.id, mall_id=d.mall_id, local_date=d.local_date, alert_count=d.alert_count,
                     delivery_state=enum_of(pb.DeliveryState, d.delivery_state), attempts=d.attempts,
                     create_time=to_timestamp(d.created_at),
                     deliver_time=to_timestamp(d.delivered_at))
