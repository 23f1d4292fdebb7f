"""Rows and domain values to crowdpack.ledger.v1 messages."""

from __future__ import annotations

from types import SimpleNamespace

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.validation import enum_of, to_timestamp
from services.ledger.models import Account, JournalEntry, Order, OrderRefund, ReasonTemplate
from services.ledger.postings import AccountState, Posted


def _id(value: int | None) -> str:
    return str(value) if value else ""


def account_to_proto(account: Account | AccountState) -> pb.Account:
    return pb.Account(account_id=str(account.id), member_id=account.member_id, asset=enum_of(pb.Asset, account.asset),
                      balance=account.balance, open_time=to_timestamp(account.opened_at),
                      points_debt=account.debt if account.asset == pb.ASSET_POINTS else 0)


def posted_to_proto(entry: Posted) -> pb.Entry:
    p = entry.posting
    return pb.Entry(
        entry_id=str(entry.id), request_id=entry.request_id, line=entry.line, account_id=str(entry.account_id),
        member_id=entry.member_id, asset=enum_of(pb.Asset, entry.asset), kind=enum_of(pb.EntryKind, p.kind),
        amount=p.amount, balance_after=entry.balance_after,
        reason_template_id=_id(p.reason_template_id), reason=p.reason, note=p.note, voucher=p.voucher,
        document_time=to_timestamp(p.document_at), mall_id=p.mall_id, store_id=p.store_id,
        operator_id=entry.operator_id, order_id=_id(p.order_id), reversal_of_entry_id=_id(p.reversal_of_id),
        create_time=to_timestamp(entry.created_at))


def entry_to_proto(entry: JournalEntry, member_id: str, asset: int) -> pb.Entry:
    return pb.Entry(
        entry_id=str(entry.id), request_id=entry.request_id, line=entry.line, account_id=str(entry.account_id),
        member_id=member_id, asset=enum_of(pb.Asset, asset), kind=enum_of(pb.EntryKind, entry.kind),
        amount=entry.amount, balance_after=entry.balance_after,
        reason_template_id=_id(entry.reason_template_id), reason=entry.reason, note=entry.note, voucher=entry.voucher,
        document_time=to_timestamp(entry.document_at), mall_id=entry.mall_id, store_id=entry.store_id,
        operator_id=entry.operator_id, order_id=_id(entry.order_id), reversal_of_entry_id=_id(entry.reversal_of_id),
        create_time=to_timestamp(entry.created_at))


def order_to_proto(order: Order | SimpleNamespace) -> pb.Order:
    """An order row, or the values of one just written (a namespace with the row's attributes)."""
    return pb.Order(
        order_id=str(order.id), member_id=order.member_id, mall_id=order.mall_id, store_id=order.store_id,
        channel=enum_of(pb.OrderChannel, order.channel), external_order_no=order.external_order_no, amount=order.amount,
        paid_amount=order.paid_amount, occur_time=to_timestamp(order.occurred_at), points_earned=order.points_earned,
        refunded_amount=order.refunded_amount, refunded_paid_amount=order.refunded_paid_amount,
        points_reversed=order.points_reversed, create_time=to_timestamp(order.created_at),
        buyer_real_name=order.buyer_real_name, buyer_phone=order.buyer_phone)


def refund_to_proto(refund: OrderRefund) -> pb.OrderRefund:
    return pb.OrderRefund(
        refund_id=str(refund.id), order_id=str(refund.order_id), amount=refund.amount, paid_amount=refund.paid_amount,
        points_reversed=refund.points_reversed, points_debt=refund.points_debt,
        occur_time=to_timestamp(refund.occurred_at), create_time=to_timestamp(refund.created_at))


def template_to_proto(template: ReasonTemplate) -> pb.ReasonTemplate:
    return pb.ReasonTemplate(
        reason_template_id=str(template.id), asset=enum_of(pb.Asset, template.asset), name=template.name,
        operator_id=template.operator_id, create_time=to_timestamp(template.created_at),
        update_time=to_timestamp(template.updated_at))
