"""Document 003 on business customers, over gRPC on a real database (SQLite and PostgreSQL):

- transfers need approval (5.4): a salesperson applies, an administrator approves or rejects, only an
  approval moves ownership, and the history says who asked and who decided; an administrator's own
  transfer and a bulk transfer (Q3) apply at once and close the applications they overtake;
- follow-up records: who, when, how, with which contact, what was said; the customer's last
  follow-up time follows them and the list sorts by it (Q7).

Each change's event is asserted in the outbox it commits with; bad input is INVALID_ARGUMENT naming the
field and writes nothing; callers outside the scope are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from crowdpack.customer.v1 import business_customer_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.events.v1 import customer_events_pb2 as events
from services.common import events as subjects
from services.common.auth import Caller, Role
from services.common.db import Database
from services.customer.business.models import FollowUp, OwnershipTransfer, TransferApplication
from services.customer.config import CustomerSettings
from services.customer.models import OutboxEvent
from services.customer.service import build_spec
from tests.support.customer import rpc_error, violated_field
from tests.support.identity import signed
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("customer")

SUPER = signed(Caller(staff_id="super-1", role=Role.SUPER_ADMIN))
MALL_ADMIN = signed(Caller(staff_id="mall-admin-1", role=Role.MALL_ADMIN, mall_ids=frozenset({"1"})))
MEMBER = signed(Caller(staff_id="7", role=Role.MEMBER))
APP = pb.TransferApplicationState


def sales(staff_id: str) -> tuple[tuple[str, str], ...]:
    return signed(Caller(staff_id=staff_id, role=Role.SALES))


def ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


@dataclass
class Stubs:
    business: pb_grpc.BusinessCustomerServiceStub
    org: org_grpc.OrganizationServiceStub
    db: Database

    async def staff(self, name: str) -> str:
        reply = await self.org.CreateStaff(org_pb.CreateStaffRequest(
            request_id=f"staff-{name}", name=name, role=org_pb.STAFF_ROLE_SALES), metadata=SUPER)
        return reply.staff.staff_id

    async def create(self, request_id: str, metadata, name: str) -> pb.BusinessCustomer:
        return (await self.business.CreateBusinessCustomer(pb.CreateBusinessCustomerRequest(
            request_id=request_id, name=name), metadata=metadata)).business_customer

    async def owner(self, customer_id: str) -> str:
        return (await self.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=customer_id),
                                                        metadata=SUPER)).business_customer.owner_staff_id

    async def apply(self, request_id: str, metadata, customer_id: str, to: str,
                    reason: str = "") -> pb.TransferApplication:
        return (await self.business.CreateTransferApplication(pb.CreateTransferApplicationRequest(
            request_id=request_id, customer_id=customer_id, to_staff_id=to, reason=reason),
            metadata=metadata)).transfer_application

    async def count(self, model) -> int:
        async with self.db.read() as session:
            return await session.scalar(select(func.count()).select_from(model))

    async def events(self, subject: str) -> list:
        async with self.db.read() as session:
            payloads = (await session.scalars(select(OutboxEvent.payload).where(OutboxEvent.subject == subject)
                                              .order_by(OutboxEvent.seq))).all()
        return [subjects.SUBJECT_TYPES[subject].FromString(p) for p in payloads]


@pytest.fixture
async def svc(database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        yield Stubs(pb_grpc.BusinessCustomerServiceStub(channel), org_grpc.OrganizationServiceStub(channel),
                    rt.ctx.db)


# --- transfers need approval


async def test_a_salespersons_transfer_moves_ownership_only_when_an_admin_approves(svc):
    s1, s2 = await svc.staff("Zhou"), await svc.staff("Wu")
    c = await svc.create("c", sales(s1), "甲公司")

    app = await svc.apply("apply", sales(s1), c.customer_id, s2, "客户搬到了华南区")
    assert (app.state, app.from_staff_id, app.to_staff_id, app.requested_by, app.reason, app.decided_by) == (
        APP.Value("TRANSFER_APPLICATION_STATE_PENDING"), s1, s2, s1, "客户搬到了华南区", "")
    # Nothing moved: the applicant still owns it, the new owner cannot see it.
    assert await svc.owner(c.customer_id) == s1
    err = await rpc_error(svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(
        customer_id=c.customer_id), metadata=sales(s2)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await svc.count(OwnershipTransfer) == 0
    [created] = await svc.events(subjects.TRANSFER_APPLICATION_CREATED)
    assert (created.transfer_application_id, created.customer_id, created.requested_by, created.to_staff_id) == (
        app.transfer_application_id, c.customer_id, s1, s2)

    # The salesperson cannot decide, nor transfer directly.
    for call in (
        svc.business.ApproveTransferApplication(pb.ApproveTransferApplicationRequest(
            request_id="self-approve", transfer_application_id=app.transfer_application_id), metadata=sales(s1)),
        svc.business.RejectTransferApplication(pb.RejectTransferApplicationRequest(
            request_id="self-reject", transfer_application_id=app.transfer_application_id), metadata=sales(s2)),
        svc.business.TransferBusinessCustomer(pb.TransferBusinessCustomerRequest(
            request_id="direct", customer_id=c.customer_id, to_staff_id=s2), metadata=sales(s1)),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert await svc.owner(c.customer_id) == s1

    approve = pb.ApproveTransferApplicationRequest(
        request_id="approve", transfer_application_id=app.transfer_application_id, decision_note="同意")
    done = await svc.business.ApproveTransferApplication(approve, metadata=MALL_ADMIN)
    assert (done.transfer_application.state, done.transfer_application.decided_by,
            done.transfer_application.decision_note, done.transfer_application.transfer_id) == (
        APP.Value("TRANSFER_APPLICATION_STATE_APPROVED"), "mall-admin-1", "同意", done.transfer.transfer_id)
    assert await svc.owner(c.customer_id) == s2
    # The history shows who asked and who decided.
    history = (await svc.business.ListOwnershipTransfers(pb.ListOwnershipTransfersRequest(
        customer_id=c.customer_id), metadata=sales(s2))).transfers
    assert [(t.from_staff_id, t.to_staff_id, t.requested_by, t.operator_id, t.reason, t.transfer_application_id)
            for t in history] == [(s1, s2, s1, "mall-admin-1", "客户搬到了华南区", app.transfer_application_id)]
    # The same request again is the same answer; another request finds it decided.
    assert await svc.business.ApproveTransferApplication(approve, metadata=MALL_ADMIN) == done
    err = await rpc_error(svc.business.ApproveTransferApplication(pb.ApproveTransferApplicationRequest(
        request_id="approve-again", transfer_application_id=app.transfer_application_id), metadata=SUPER))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.FAILED_PRECONDITION, "transfer_application_id")
    assert await svc.count(OwnershipTransfer) == 1

    [changed] = await svc.events(subjects.BUSINESS_OWNER_CHANGED)
    assert (changed.customer_id, changed.from_staff_id, changed.to_staff_id, changed.requested_by,
            changed.operator_id, changed.transfer_application_id) == (
        c.customer_id, s1, s2, s1, "mall-admin-1", app.transfer_application_id)
    [decided] = await svc.events(subjects.TRANSFER_APPLICATION_DECIDED)
    assert (decided.approved, decided.decided_by) == (True, "mall-admin-1")


async def test_a_rejected_application_leaves_the_owner_and_is_listed_with_its_decision(svc):
    s1, s2, s3 = await svc.staff("Zhou"), await svc.staff("Wu"), await svc.staff("Zheng")
    c = await svc.create("c", sales(s1), "乙公司")
    d = await svc.create("d", sales(s3), "丙公司")
    app = await svc.apply("apply", sales(s1), c.customer_id, s2)
    other = await svc.apply("apply-d", sales(s3), d.customer_id, s1)

    rejected = (await svc.business.RejectTransferApplication(pb.RejectTransferApplicationRequest(
        request_id="reject", transfer_application_id=app.transfer_application_id, decision_note="先跟完这单"),
        metadata=SUPER)).transfer_application
    assert (rejected.state, rejected.decided_by, rejected.decision_note) == (
        APP.Value("TRANSFER_APPLICATION_STATE_REJECTED"), "super-1", "先跟完这单")
    assert await svc.owner(c.customer_id) == s1
    assert await svc.count(OwnershipTransfer) == 0
    [decided] = await svc.events(subjects.TRANSFER_APPLICATION_DECIDED)
    assert (decided.approved, decided.transfer_application_id) == (False, app.transfer_application_id)
    # Once decided, a new application may be made.
    again = await svc.apply("apply-again", sales(s1), c.customer_id, s2)

    async def listed(metadata, **request) -> list[str]:
        reply = await svc.business.ListTransferApplications(pb.ListTransferApplicationsRequest(**request),
                                                            metadata=metadata)
        return [a.transfer_application_id for a in reply.transfer_applications]

    everything = [again.transfer_application_id, other.transfer_application_id, app.transfer_application_id]
    assert await listed(SUPER) == everything
    assert await listed(MALL_ADMIN, states=[APP.Value("TRANSFER_APPLICATION_STATE_PENDING")]) == everything[:2]
    assert await listed(SUPER, customer_id=c.customer_id) == [everything[0], everything[2]]
    # A salesperson sees the applications they made or that name them, no others.
    assert await listed(sales(s1)) == everything
    assert await listed(sales(s2)) == [everything[0], everything[2]]
    assert await listed(sales(s3)) == [everything[1]]
    first = await svc.business.ListTransferApplications(pb.ListTransferApplicationsRequest(page_size=2),
                                                        metadata=SUPER)
    rest = await svc.business.ListTransferApplications(pb.ListTransferApplicationsRequest(
        page_size=2, page_token=first.next_page_token), metadata=SUPER)
    assert [a.transfer_application_id for a in [*first.transfer_applications, *rest.transfer_applications]] == \
        everything
    assert rest.next_page_token == ""


async def test_applications_outside_the_callers_scope_or_with_bad_input_are_refused_and_write_nothing(svc):
    s1, s2 = await svc.staff("Zhou"), await svc.staff("Wu")
    c = await svc.create("c", sales(s1), "丁公司")
    theirs = await svc.create("t", sales(s2), "戊公司")

    # Another salesperson's customer, a member, an unknown customer.
    err = await rpc_error(svc.apply("x1", sales(s1), theirs.customer_id, s1))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await rpc_error(svc.apply("x2", MEMBER, c.customer_id, s2))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await rpc_error(svc.business.ListTransferApplications(pb.ListTransferApplicationsRequest(),
                                                                metadata=MEMBER))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = await rpc_error(svc.apply("x3", sales(s1), "987654", s2))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.NOT_FOUND, "customer_id")

    for request, code, field in [
        (pb.CreateTransferApplicationRequest(request_id="b1", customer_id="abc", to_staff_id=s2),
         grpc.StatusCode.INVALID_ARGUMENT, "customer_id"),
        (pb.CreateTransferApplicationRequest(request_id="b2", customer_id=c.customer_id, to_staff_id=" "),
         grpc.StatusCode.INVALID_ARGUMENT, "to_staff_id"),
        (pb.CreateTransferApplicationRequest(request_id="b3", customer_id=c.customer_id, to_staff_id=s2,
                                             reason="x" * 501), grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (pb.CreateTransferApplicationRequest(request_id="b4", customer_id=c.customer_id, to_staff_id=s2,
                                             reason="bad\x00"), grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (pb.CreateTransferApplicationRequest(request_id="b5", customer_id=c.customer_id, to_staff_id=s1),
         grpc.StatusCode.FAILED_PRECONDITION, "to_staff_id"),
        (pb.CreateTransferApplicationRequest(request_id="b6", customer_id=c.customer_id, to_staff_id="424242"),
         grpc.StatusCode.NOT_FOUND, "to_staff_id"),
    ]:
        err = await rpc_error(svc.business.CreateTransferApplication(request, metadata=sales(s1)))
        assert (err.code(), violated_field(err)) == (code, field)
    for request, field in [
        (pb.ListTransferApplicationsRequest(states=[9]), "states"),
        (pb.ListTransferApplicationsRequest(states=[0]), "states"),
        (pb.ListTransferApplicationsRequest(customer_id="x"), "customer_id"),
        (pb.ListTransferApplicationsRequest(page_size=-1), "page_size"),
        (pb.ListTransferApplicationsRequest(page_token="garbage"), "page_token"),
    ]:
        err = await rpc_error(svc.business.ListTransferApplications(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    for call, field in [
        (svc.business.ApproveTransferApplication(pb.ApproveTransferApplicationRequest(
            request_id="b7", transfer_application_id=""), metadata=SUPER), "transfer_application_id"),
        (svc.business.RejectTransferApplication(pb.RejectTransferApplicationRequest(
            request_id="b8", transfer_application_id="1", decision_note="y" * 501), metadata=SUPER),
         "decision_note"),
    ]:
        err = await rpc_error(call)
        assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    assert await svc.count(TransferApplication) == 0
    assert await svc.events(subjects.TRANSFER_APPLICATION_CREATED) == []

    # One pending application per customer.
    await svc.apply("first", sales(s1), c.customer_id, s2)
    err = await rpc_error(svc.apply("second", sales(s1), c.customer_id, s2))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.FAILED_PRECONDITION, "customer_id")
    err = await rpc_error(svc.business.ApproveTransferApplication(pb.ApproveTransferApplicationRequest(
        request_id="unknown", transfer_application_id="987654"), metadata=SUPER))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.NOT_FOUND, "transfer_application_id")
    assert await svc.count(TransferApplication) == 1


async def test_admin_and_bulk_transfers_apply_at_once_and_close_the_applications_they_overtake(svc):
    s1, s2, s3, heir = (await svc.staff("Zhou"), await svc.staff("Wu"), await svc.staff("Zheng"),
                        await svc.staff("Heir"))
    a = await svc.create("a", sales(s1), "A 公司")
    b = await svc.create("b", sales(s1), "B 公司")
    app_a = await svc.apply("apply-a", sales(s1), a.customer_id, s2)
    app_b = await svc.apply("apply-b", sales(s1), b.customer_id, s2)

    # The administrator's own transfer applies at once.
    direct = await svc.business.TransferBusinessCustomer(pb.TransferBusinessCustomerRequest(
        request_id="direct", customer_id=a.customer_id, to_staff_id=s3, reason="调整"), metadata=SUPER)
    assert (direct.transfer.requested_by, direct.transfer.operator_id, direct.transfer.transfer_application_id) == (
        "super-1", "super-1", "")
    assert await svc.owner(a.customer_id) == s3
    # Q3: someone leaves, everything they own goes at once.
    bulk = await svc.business.BulkTransferBusinessCustomers(pb.BulkTransferBusinessCustomersRequest(
        request_id="leave", from_staff_id=s1, to_staff_id=heir, reason="离职"), metadata=MALL_ADMIN)
    assert [t.customer_id for t in bulk.transfers] == [b.customer_id]
    assert await svc.owner(b.customer_id) == heir

    # The applications asked about an owner who no longer holds the customers: closed, and cannot be approved.
    for app, operator in ((app_a, "super-1"), (app_b, "mall-admin-1")):
        listed = (await svc.business.ListTransferApplications(pb.ListTransferApplicationsRequest(
            customer_id=app.customer_id), metadata=SUPER)).transfer_applications
        assert [(x.state, x.decided_by) for x in listed] == [(APP.Value("TRANSFER_APPLICATION_STATE_REJECTED"),
                                                              operator)]
        err = await rpc_error(svc.business.ApproveTransferApplication(pb.ApproveTransferApplicationRequest(
            request_id=f"late-{app.transfer_application_id}", transfer_application_id=app.transfer_application_id),
            metadata=SUPER))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await svc.owner(a.customer_id) == s3 and await svc.owner(b.customer_id) == heir
    changed = await svc.events(subjects.BUSINESS_OWNER_CHANGED)
    assert [(e.customer_id, e.to_staff_id, e.operator_id) for e in changed] == [
        (a.customer_id, s3, "super-1"), (b.customer_id, heir, "mall-admin-1")]
    assert len(await svc.events(subjects.TRANSFER_APPLICATION_DECIDED)) == 2

    # Deleting a customer closes its pending application too.
    app_c = await svc.apply("apply-c", sales(s3), a.customer_id, s2)
    await svc.business.DeleteBusinessCustomer(pb.DeleteBusinessCustomerRequest(
        request_id="delete", customer_id=a.customer_id), metadata=sales(s3))
    listed = (await svc.business.ListTransferApplications(pb.ListTransferApplicationsRequest(
        customer_id=a.customer_id, states=[APP.Value("TRANSFER_APPLICATION_STATE_REJECTED")]),
        metadata=sales(s3))).transfer_applications
    assert [(x.transfer_application_id, x.decided_by, x.decision_note) for x in listed][0] == (
        app_c.transfer_application_id, s3, "superseded: the customer was deleted")


# --- follow-ups


async def test_follow_ups_record_who_when_how_and_set_the_last_follow_up_time_the_list_sorts_by(svc):
    s1 = await svc.staff("Zhou")
    now = datetime.now(UTC).replace(microsecond=0)
    old = await svc.create("old", sales(s1), "老客户")
    new = await svc.create("new", sales(s1), "新客户")
    never = await svc.create("never", sales(s1), "没跟进")
    contact = (await svc.business.CreateContact(pb.CreateContactRequest(
        request_id="contact", customer_id=old.customer_id, name="李经理"), metadata=sales(s1))).contact

    request = pb.CreateFollowUpRequest(
        request_id="f1", customer_id=old.customer_id, follow_up_time=ts(now - timedelta(days=100)),
        method=pb.FOLLOW_UP_METHOD_VISIT, contact_id=contact.contact_id, content="  上门拜访，谈了明年的采购计划  ")
    first = await svc.business.CreateFollowUp(request, metadata=sales(s1))
    f = first.follow_up
    assert (f.staff_id, f.method, f.contact_id, f.contact_name, f.content) == (
        s1, pb.FOLLOW_UP_METHOD_VISIT, contact.contact_id, "李经理", "上门拜访，谈了明年的采购计划")
    assert first.business_customer.last_follow_up_time.ToDatetime(tzinfo=UTC) == now - timedelta(days=100)
    assert await svc.business.CreateFollowUp(request, metadata=sales(s1)) == first
    # A later follow-up moves the time on; one recorded afterwards about an earlier day does not move it back.
    await svc.business.CreateFollowUp(pb.CreateFollowUpRequest(
        request_id="f2", customer_id=old.customer_id, follow_up_time=ts(now - timedelta(days=95)),
        method=pb.FOLLOW_UP_METHOD_CALL, content="电话确认报价"), metadata=SUPER)
    late = await svc.business.CreateFollowUp(pb.CreateFollowUpRequest(
        request_id="f3", customer_id=old.customer_id, follow_up_time=ts(now - timedelta(days=120)),
        method=pb.FOLLOW_UP_METHOD_EMAIL, content="补记：邮件寄送资料"), metadata=sales(s1))
    assert late.business_customer.last_follow_up_time.ToDatetime(tzinfo=UTC) == now - timedelta(days=95)
    # Without a time it happened now.
    recent = await svc.business.CreateFollowUp(pb.CreateFollowUpRequest(
        request_id="f4", customer_id=new.customer_id, method=pb.FOLLOW_UP_METHOD_WECHAT, content="微信沟通"),
        metadata=sales(s1))
    assert abs(recent.follow_up.follow_up_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)

    listed = (await svc.business.ListFollowUps(pb.ListFollowUpsRequest(customer_id=old.customer_id),
                                               metadata=sales(s1))).follow_ups
    assert [(x.method, x.staff_id) for x in listed] == [
        (pb.FOLLOW_UP_METHOD_CALL, "super-1"), (pb.FOLLOW_UP_METHOD_VISIT, s1), (pb.FOLLOW_UP_METHOD_EMAIL, s1)]
    page = await svc.business.ListFollowUps(pb.ListFollowUpsRequest(customer_id=old.customer_id, page_size=2),
                                            metadata=sales(s1))
    rest = await svc.business.ListFollowUps(pb.ListFollowUpsRequest(
        customer_id=old.customer_id, page_size=2, page_token=page.next_page_token), metadata=sales(s1))
    assert [x.follow_up_id for x in [*page.follow_ups, *rest.follow_ups]] == [x.follow_up_id for x in listed]

    # Q7: ascending by last follow-up time finds the longest without a follow-up first.
    reply = await svc.business.ListBusinessCustomers(pb.ListBusinessCustomersRequest(
        order_by=pb.BUSINESS_CUSTOMER_ORDER_BY_LAST_FOLLOW_UP_TIME, ascending=True), metadata=sales(s1))
    assert [c.name for c in reply.business_customers] == ["没跟进", "老客户", "新客户"]
    assert reply.business_customers[1].last_follow_up_time.ToDatetime(tzinfo=UTC) == now - timedelta(days=95)
    assert not never.HasField("last_follow_up_time")

    followed = await svc.events(subjects.BUSINESS_FOLLOWED_UP)
    assert [(e.customer_id, e.method) for e in followed] == [
        (old.customer_id, "FOLLOW_UP_METHOD_VISIT"), (old.customer_id, "FOLLOW_UP_METHOD_CALL"),
        (old.customer_id, "FOLLOW_UP_METHOD_EMAIL"), (new.customer_id, "FOLLOW_UP_METHOD_WECHAT")]
    assert isinstance(followed[0], events.BusinessFollowedUp)


async def test_follow_ups_outside_the_scope_or_with_bad_input_are_refused_and_write_nothing(svc):
    s1, s2 = await svc.staff("Zhou"), await svc.staff("Wu")
    c = await svc.create("c", sales(s1), "己公司")
    theirs = await svc.create("t", sales(s2), "庚公司")
    their_contact = (await svc.business.CreateContact(pb.CreateContactRequest(
        request_id="contact", customer_id=theirs.customer_id, name="王总"), metadata=sales(s2))).contact

    def follow_up(request_id: str, **fields) -> pb.CreateFollowUpRequest:
        fields.setdefault("customer_id", c.customer_id)
        fields.setdefault("method", pb.FOLLOW_UP_METHOD_CALL)
        fields.setdefault("content", "电话")
        return pb.CreateFollowUpRequest(request_id=request_id, **fields)

    for call in (
        svc.business.CreateFollowUp(follow_up("s1", customer_id=theirs.customer_id), metadata=sales(s1)),
        svc.business.ListFollowUps(pb.ListFollowUpsRequest(customer_id=theirs.customer_id), metadata=sales(s1)),
        svc.business.CreateFollowUp(follow_up("s2"), metadata=MEMBER),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    for request, code, field in [
        (follow_up("b1", customer_id=""), grpc.StatusCode.INVALID_ARGUMENT, "customer_id"),
        (follow_up("b2", method=pb.FOLLOW_UP_METHOD_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT, "method"),
        (follow_up("b3", method=42), grpc.StatusCode.INVALID_ARGUMENT, "method"),
        (follow_up("b4", content="   "), grpc.StatusCode.INVALID_ARGUMENT, "content"),
        (follow_up("b5", content="x" * 2001), grpc.StatusCode.INVALID_ARGUMENT, "content"),
        (follow_up("b6", content="bad\x1b"), grpc.StatusCode.INVALID_ARGUMENT, "content"),
        (follow_up("b7", follow_up_time=ts(datetime.now(UTC) + timedelta(days=1))),
         grpc.StatusCode.INVALID_ARGUMENT, "follow_up_time"),
        (follow_up("b8", contact_id="abc"), grpc.StatusCode.INVALID_ARGUMENT, "contact_id"),
        (follow_up("b9", contact_id=their_contact.contact_id), grpc.StatusCode.NOT_FOUND, "contact_id"),
    ]:
        err = await rpc_error(svc.business.CreateFollowUp(request, metadata=sales(s1)))
        assert (err.code(), violated_field(err)) == (code, field)
    err = await rpc_error(svc.business.ListFollowUps(pb.ListFollowUpsRequest(
        customer_id=c.customer_id, page_token="garbage"), metadata=sales(s1)))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    assert await svc.count(FollowUp) == 0
    assert await svc.events(subjects.BUSINESS_FOLLOWED_UP) == []
    got = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id),
                                                  metadata=sales(s1))).business_customer
    assert not got.HasField("last_follow_up_time")
