"""The back office's manual adjustment dialog and its reason templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from crowdpack.ledger.v1 import ledger_service_pb2 as pb
from services.common.auth import Caller, Role
from tests.support.identity import signed
from tests.support.ledger import ago, refused, timestamp, wait_for_events

pytestmark = pytest.mark.database("ledger")


POINTS, BALANCE, RED = pb.ASSET_POINTS, pb.ASSET_BALANCE, pb.ASSET_RED_PACKET
UP, DOWN = pb.DIRECTION_INCREASE, pb.DIRECTION_DECREASE
ONE_MALL = signed(Caller(staff_id="li", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))
TWO_MALLS = signed(Caller(staff_id="wang", role=Role.MALL_ADMIN, mall_ids=frozenset({"100", "200"})))
SUPER = signed(Caller(staff_id="boss", role=Role.SUPER_ADMIN))


async def template(ledger, name: str, asset: int = POINTS, request_id: str | None = None) -> pb.ReasonTemplate:
    reply = await ledger.stub.CreateReasonTemplate(pb.CreateReasonTemplateRequest(
        request_id=request_id or f"t-{name}", asset=asset, name=name), metadata=SUPER)
    return reply.reason_template


async def test_reason_templates_can_be_created_read_updated_and_deleted(ledger):
    made = await template(ledger, "补录消费积分")
    assert (made.name, made.asset, made.operator_id) == ("补录消费积分", POINTS, "boss")
    assert await template(ledger, "补录消费积分") == made  # the same request again
    code, field = await refused(ledger.stub.CreateReasonTemplate(pb.CreateReasonTemplateRequest(
        request_id="dup", asset=POINTS, name="补录消费积分")))
    assert (code, field) == (grpc.StatusCode.ALREADY_EXISTS, "name")
    red = await template(ledger, "补录消费积分", RED, request_id="t-red")  # the same name for another asset
    anywhere = await template(ledger, "活动奖励", pb.ASSET_UNSPECIFIED)
    for i in range(3):
        await template(ledger, f"其他 {i}", BALANCE)

    fetched = await ledger.stub.GetReasonTemplate(
        pb.GetReasonTemplateRequest(reason_template_id=made.reason_template_id))
    assert fetched.reason_template == made
    for_points = await ledger.stub.ListReasonTemplates(pb.ListReasonTemplatesRequest(asset=POINTS))
    assert [t.reason_template_id for t in for_points.reason_templates] == [anywhere.reason_template_id,
                                                                           made.reason_template_id]
    seen, token = [], ""
    while True:
        page = await ledger.stub.ListReasonTemplates(pb.ListReasonTemplatesRequest(page_size=2, page_token=token))
        seen += [t.name for t in page.reason_templates]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["其他 2", "其他 1", "其他 0", "活动奖励", "补录消费积分", "补录消费积分"]

    renamed = await ledger.stub.UpdateReasonTemplate(pb.UpdateReasonTemplateRequest(
        request_id="u", reason_template_id=made.reason_template_id, name="补录积分"), metadata=ONE_MALL)
    assert (renamed.reason_template.name, renamed.reason_template.operator_id) == ("补录积分", "li")
    # "活动奖励" is offered for every asset, so the points dialog already shows that name.
    assert await refused(ledger.stub.UpdateReasonTemplate(pb.UpdateReasonTemplateRequest(
        request_id="u2", reason_template_id=made.reason_template_id, name="活动奖励"))) == (
        grpc.StatusCode.ALREADY_EXISTS, "name")
    assert await refused(ledger.stub.CreateReasonTemplate(pb.CreateReasonTemplateRequest(
        request_id="u2b", asset=pb.ASSET_UNSPECIFIED, name="补录消费积分"))) == (grpc.StatusCode.ALREADY_EXISTS, "name")
    assert await refused(ledger.stub.UpdateReasonTemplate(pb.UpdateReasonTemplateRequest(
        request_id="u3", reason_template_id=red.reason_template_id, name=" "))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "name")

    deleted = await ledger.stub.DeleteReasonTemplate(pb.DeleteReasonTemplateRequest(
        request_id="d", reason_template_id=red.reason_template_id))
    assert deleted.reason_template.name == "补录消费积分"
    assert await refused(ledger.stub.GetReasonTemplate(pb.GetReasonTemplateRequest(
        reason_template_id=red.reason_template_id))) == (grpc.StatusCode.NOT_FOUND, "reason_template_id")
    assert await refused(ledger.stub.DeleteReasonTemplate(pb.DeleteReasonTemplateRequest(
        request_id="d2", reason_template_id=red.reason_template_id))) == (grpc.StatusCode.NOT_FOUND,
                                                                         "reason_template_id")
    again = await template(ledger, "补录消费积分", RED, request_id="t-red-2")  # a deleted name is free again
    assert again.reason_template_id != red.reason_template_id
    for bad, field in [(pb.CreateReasonTemplateRequest(request_id="b1", name=""), "name"),
                       (pb.CreateReasonTemplateRequest(request_id="b2", name="x" * 101), "name"),
                       (pb.CreateReasonTemplateRequest(request_id="b3", name="ok", asset=9), "asset"),
                       (pb.CreateReasonTemplateRequest(name="ok"), "request_id")]:
        assert await refused(ledger.stub.CreateReasonTemplate(bad)) == (grpc.StatusCode.INVALID_ARGUMENT, field)


def adjustment(request_id: str, value: int, direction: int = UP, **fields) -> pb.AdjustBalanceRequest:
    return pb.AdjustBalanceRequest(request_id=request_id, member_id=fields.pop("member_id", "1"),
                                   asset=fields.pop("asset", POINTS), direction=direction, value=value, **fields)


async def test_an_adjustment_records_the_dialog_its_operator_and_announces_itself(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")  # the mall admins' member
    reason = await template(ledger, "补录消费积分")
    made = await ledger.stub.AdjustBalance(adjustment(
        "adj-1", 300, reason_template_id=reason.reason_template_id, description="小票补录",
        voucher="uploads/2024/ticket.jpg", document_time=ago(days=2), mall_id="200", store_id="31"),
        metadata=TWO_MALLS)
    entry = made.entry
    assert (entry.kind, entry.amount, entry.balance_after) == (pb.ENTRY_KIND_ADJUST, 300, 300)
    assert (entry.reason, entry.reason_template_id, entry.note, entry.voucher) == (
        "补录消费积分", reason.reason_template_id, "小票补录", "uploads/2024/ticket.jpg")
    assert (entry.mall_id, entry.store_id, entry.operator_id) == ("200", "31", "wang")
    assert entry.document_time.ToDatetime(tzinfo=UTC) < datetime.now(UTC) - timedelta(days=1)

    down = await ledger.stub.AdjustBalance(adjustment("adj-2", 120, DOWN, reason_template_id=reason.reason_template_id),
                                           metadata=ONE_MALL)
    assert (down.entry.amount, down.entry.balance_after, down.entry.mall_id) == (-120, 180, "100")
    assert await refused(ledger.stub.AdjustBalance(adjustment(
        "adj-3", 181, DOWN, reason_template_id=reason.reason_template_id), metadata=ONE_MALL)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "value")
    assert (await ledger.balance("1", POINTS)).balance == 180

    posted = await wait_for_events(ledger.js, "ledger.entry.posted.v1", 2)
    assert [(e.kind, e.amount, e.mall_id, e.store_id, e.operator_id, e.reason) for e in posted] == [
        ("ENTRY_KIND_ADJUST", 300, "200", "31", "wang", "补录消费积分"),
        ("ENTRY_KIND_ADJUST", -120, "100", "", "li", "补录消费积分")]


async def test_an_adjustment_needs_a_settlement_mall_where_the_operator_manages_several(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")
    reason = (await template(ledger, "补发红包", RED)).reason_template_id
    points_reason = (await template(ledger, "积分原因")).reason_template_id
    future = timestamp(datetime.now(UTC) + timedelta(days=3))
    cases = [
        (adjustment("a1", 10, asset=RED, reason_template_id=reason), TWO_MALLS,
         grpc.StatusCode.INVALID_ARGUMENT, "mall_id"),
        (adjustment("a2", 10, asset=RED, reason_template_id=reason), SUPER, grpc.StatusCode.INVALID_ARGUMENT,
         "mall_id"),
        (adjustment("a3", 10, asset=RED, reason_template_id=reason, mall_id="300"), TWO_MALLS,
         grpc.StatusCode.PERMISSION_DENIED, "mall_id"),
        (adjustment("a4", 10, asset=RED, reason_template_id=reason, mall_id="200"), ONE_MALL,
         grpc.StatusCode.PERMISSION_DENIED, "mall_id"),
        (adjustment("a5", 10, asset=RED), ONE_MALL, grpc.StatusCode.INVALID_ARGUMENT, "reason_template_id"),
        (adjustment("a6", 10, asset=RED, reason_template_id="999"), ONE_MALL, grpc.StatusCode.NOT_FOUND,
         "reason_template_id"),
        (adjustment("a7", 10, asset=RED, reason_template_id=points_reason), ONE_MALL,
         grpc.StatusCode.FAILED_PRECONDITION, "reason_template_id"),
        (adjustment("a8", 0, asset=RED, reason_template_id=reason), ONE_MALL, grpc.StatusCode.INVALID_ARGUMENT,
         "value"),
        (adjustment("a9", 10, 0, asset=RED, reason_template_id=reason), ONE_MALL, grpc.StatusCode.INVALID_ARGUMENT,
         "direction"),
        (adjustment("a10", 10, asset=RED, reason_template_id=reason, document_time=future), ONE_MALL,
         grpc.StatusCode.INVALID_ARGUMENT, "document_time"),
        (adjustment("a11", 10, asset=RED, reason_template_id=reason, member_id="404"), ONE_MALL,
         grpc.StatusCode.NOT_FOUND, "member_id"),
        (adjustment("a12", 10, asset=RED, reason_template_id=reason, description="x" * 501), ONE_MALL,
         grpc.StatusCode.INVALID_ARGUMENT, "description"),
        (adjustment("a13", 10, asset=RED, reason_template_id=reason),
         signed(Caller(staff_id="s", role=Role.SALES, mall_ids=frozenset({"100"}))),
         grpc.StatusCode.PERMISSION_DENIED, "role"),
    ]
    for request, who, code, field in cases:
        assert await refused(ledger.stub.AdjustBalance(request, metadata=who)) == (code, field), request.request_id
    assert (await ledger.balance("1", RED)).balance == 0
    ok = await ledger.stub.AdjustBalance(adjustment("a14", 10, asset=RED, reason_template_id=reason, mall_id="200"),
                                         metadata=SUPER)
    assert (ok.entry.amount, ok.entry.mall_id, ok.entry.operator_id) == (10, "200", "boss")
