"""Business customers over gRPC, in-process, on real NATS and a real database (SQLite and PostgreSQL).

The archive and its generated code, the computed grade, contacts and the one primary contact,
ownership scope and transfers, the list (search, filters, sorts, pages), statistics, soft delete;
every bad input is INVALID_ARGUMENT naming the field and leaves nothing written.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crowdpack.customer.v1 import business_customer_service_pb2 as pb
from crowdpack.customer.v1 import business_customer_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import classification_service_pb2 as cls_pb
from crowdpack.customer.v1 import classification_service_pb2_grpc as cls_grpc
from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from services.common.auth import Caller, Role
from services.common.db import Database
from services.customer.business.codes import CODE_TZ
from services.customer.business.models import Contact
from services.customer.classification.models import CustomerTag
from services.customer.config import CustomerSettings
from services.customer.models import TimelineEntry
from services.customer.service import build_spec
from tests.support.customer import rpc_error, violated_field
from tests.support.identity import signed
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("customer")


SUPER = signed(Caller(staff_id="super-1", role=Role.SUPER_ADMIN))
MALL_ADMIN = signed(Caller(staff_id="mall-admin-1", role=Role.MALL_ADMIN, mall_ids=frozenset({"1"})))
MEMBER = signed(Caller(staff_id="7", role=Role.MEMBER))
YUAN = 100

S = pb.BusinessCustomerStatus
G = pb.BusinessCustomerGrade


def sales(staff_id: str) -> tuple[tuple[str, str], ...]:
    return signed(Caller(staff_id=staff_id, role=Role.SALES))


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


def ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


@dataclass
class Stubs:
    business: pb_grpc.BusinessCustomerServiceStub
    classification: cls_grpc.ClassificationServiceStub
    members: member_grpc.MemberServiceStub
    org: org_grpc.OrganizationServiceStub
    db: Database

    async def staff(self, name: str, role: int = org_pb.STAFF_ROLE_SALES) -> str:
        reply = await self.org.CreateStaff(org_pb.CreateStaffRequest(request_id=f"staff-{name}", name=name, role=role),
                                           metadata=SUPER)
        return reply.staff.staff_id

    async def create(self, request_id: str, metadata=SUPER, **fields) -> pb.BusinessCustomer:
        fields.setdefault("name", f"Company {request_id}")
        reply = await self.business.CreateBusinessCustomer(
            pb.CreateBusinessCustomerRequest(request_id=request_id, **fields), metadata=metadata)
        return reply.business_customer

    async def listed(self, metadata=SUPER, **request) -> list[pb.BusinessCustomer]:
        reply = await self.business.ListBusinessCustomers(pb.ListBusinessCustomersRequest(**request),
                                                          metadata=metadata)
        return list(reply.business_customers)

    async def timeline(self, customer_id: str) -> list[tuple[str, dict]]:
        async with self.db.read() as session:
            rows = (await session.scalars(select(TimelineEntry).where(TimelineEntry.customer_id == int(customer_id))
                                          .order_by(TimelineEntry.id))).all()
        return [(r.kind, json.loads(r.detail)) for r in rows]


@pytest.fixture
async def svc(database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        yield Stubs(pb_grpc.BusinessCustomerServiceStub(channel), cls_grpc.ClassificationServiceStub(channel),
                    member_grpc.MemberServiceStub(channel), org_grpc.OrganizationServiceStub(channel), rt.ctx.db)




# --- the archive


async def test_create_generates_the_code_computes_the_grade_and_records_the_creation(svc):
    founded = "2010-05-04"
    followed = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    c = await svc.create(
        "c1", name="  Hangzhou Widgets Co., Ltd. ", short_name="HZW", type=pb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE,
        industry="electronics", scale="medium", address="1 West Lake Rd", website="https://hzw.example.com",
        founded_date=founded, credit_limit_fen=500_000 * YUAN, payment_terms="monthly, 30 days", payment_days=30,
        source="trade fair", status=S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"), annual_revenue_fen=1_200_000 * YUAN,
        cooperation_years=5, last_follow_up_time=ts(followed), phone="13900000001", email="Buyer@HZW.example.com")
    today = datetime.now(CODE_TZ).strftime("%Y%m%d")
    assert re.fullmatch(rf"CUS{today}\d{{4}}", c.code)
    assert c.name == "Hangzhou Widgets Co., Ltd." and c.short_name == "HZW"
    assert c.grade == pb.BUSINESS_CUSTOMER_GRADE_A
    assert c.owner_staff_id == "super-1" and c.created_by == "super-1"
    assert c.founded_date == founded and c.email == "buyer@hzw.example.com" and c.phone == "13900000001"
    assert c.last_follow_up_time.ToDatetime(tzinfo=UTC) == followed
    assert c.group_id == "" and c.contact_count == 0 and list(c.tags) == []
    got = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id),
                                                  metadata=SUPER)).business_customer
    assert got == c
    [(kind, detail)] = await svc.timeline(c.customer_id)
    assert kind == "created" and detail["code"] == c.code

    # Defaults: status potential (so grade D), owner the creator.
    d = await svc.create("c2", metadata=sales("s-9"), annual_revenue_fen=5_000_000 * YUAN, cooperation_years=9)
    assert d.status == pb.BUSINESS_CUSTOMER_STATUS_POTENTIAL and d.grade == pb.BUSINESS_CUSTOMER_GRADE_D
    assert d.owner_staff_id == "s-9"
    assert int(d.code[-4:]) == int(c.code[-4:]) + 1


async def test_twenty_concurrent_creates_get_twenty_distinct_codes(svc):
    created = await asyncio.gather(*(svc.create(f"conc-{i}") for i in range(20)))
    codes = [c.code for c in created]
    assert len(set(codes)) == 20
    assert sorted(int(code[-4:]) for code in codes) == list(range(1, 21))
    assert len({code[:11] for code in codes}) == 1


async def test_request_id_replays_the_result_and_rejects_a_different_body(svc):
    first = await svc.create("same", name="Alpha")
    again = await svc.create("same", name="Alpha")
    assert again == first
    err = await rpc_error(svc.create("same", name="Beta"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and violated_field(err) == "request_id"
    assert [c.name for c in await svc.listed()] == ["Alpha"]


BAD_CREATES = [
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"website": "www.example.com"}, "website"),
    ({"website": "ftp://example.com"}, "website"),
    ({"phone": "1380000000"}, "phone"),
    ({"phone": "23800000000"}, "phone"),
    ({"email": "no-at-sign"}, "email"),
    ({"credit_limit_fen": -1}, "credit_limit_fen"),
    ({"annual_revenue_fen": -100}, "annual_revenue_fen"),
    ({"payment_days": -1}, "payment_days"),
    ({"cooperation_years": -1}, "cooperation_years"),
    ({"type": 9}, "type"),
    ({"status": 9}, "status"),
    ({"founded_date": "2020-13-01"}, "founded_date"),
    ({"founded_date": "20200101"}, "founded_date"),
    ({"founded_date": (date.today() + timedelta(days=2)).isoformat()}, "founded_date"),
    ({"last_follow_up_time": ts(datetime.now(UTC) + timedelta(days=1))}, "last_follow_up_time"),
    ({"group_id": "abc"}, "group_id"),
    ({"short_name": "s" * 51}, "short_name"),
    ({"owner_staff_id": "o" * 65}, "owner_staff_id"),
]


async def test_every_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(svc):
    for i, (fields, field) in enumerate(BAD_CREATES):
        err = await rpc_error(svc.create(f"bad-{i}", **fields))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert violated_field(err) == field, fields
        assert err.details().startswith(f"{field}:")
    err = await rpc_error(svc.business.CreateBusinessCustomer(pb.CreateBusinessCustomerRequest(name="No id")))
    assert violated_field(err) == "request_id"
    assert await svc.listed() == []
    # Nothing half-written either: the code sequence was not advanced by the failures.
    first = await svc.create("good")
    assert first.code.endswith("0001")


async def test_unknown_references_are_not_found_and_write_nothing(svc):
    err = await rpc_error(svc.create("g", group_id="999"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and violated_field(err) == "group_id"
    err = await rpc_error(svc.create("o", owner_staff_id="999"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and violated_field(err) == "owner_staff_id"
    for call in (svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id="12345"), metadata=SUPER),
                 svc.business.ListContacts(pb.ListContactsRequest(customer_id="12345"), metadata=SUPER)):
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND and violated_field(err) == "customer_id"
    err = await rpc_error(svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id="x1"),
                                                           metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_field(err) == "customer_id"
    assert await svc.listed() == []


async def test_phone_and_email_are_unique_across_all_customers(svc):
    await svc.members.CreateMember(member_pb.CreateMemberRequest(request_id="m1", phone="13700000001"),
                                   metadata=SUPER)
    await svc.create("a", phone="13700000002", email="a@b.cn")
    for fields, field in (({"phone": "13700000001"}, "phone"), ({"phone": "13700000002"}, "phone"),
                          ({"email": "A@B.CN"}, "email")):
        err = await rpc_error(svc.create(f"dup-{field}-{len(fields)}-{fields[field]}", **fields))
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS and violated_field(err) == field
    assert len(await svc.listed()) == 1


async def test_update_changes_the_named_fields_recomputes_the_grade_and_records_each_change(svc):
    c = await svc.create("u", status=S.Value("BUSINESS_CUSTOMER_STATUS_INTENT"), annual_revenue_fen=50_000 * YUAN)
    assert c.grade == pb.BUSINESS_CUSTOMER_GRADE_D

    async def update(rid: str, *paths: str, **fields) -> pb.BusinessCustomer:
        reply = await svc.business.UpdateBusinessCustomer(pb.UpdateBusinessCustomerRequest(
            request_id=rid, customer_id=c.customer_id, business_customer=pb.BusinessCustomer(**fields),
            update_mask=mask(*paths)), metadata=SUPER)
        return reply.business_customer

    u = await update("u1", "annual_revenue_fen", annual_revenue_fen=600_000 * YUAN, name="ignored, not in the mask")
    assert u.grade == pb.BUSINESS_CUSTOMER_GRADE_C and u.name == c.name  # 600k yuan but 0 years: C
    u = await update("u2", "cooperation_years", cooperation_years=2)
    assert u.grade == pb.BUSINESS_CUSTOMER_GRADE_B
    u = await update("u3", "annual_revenue_fen", "cooperation_years", annual_revenue_fen=2_000_000 * YUAN,
                     cooperation_years=4)
    assert u.grade == pb.BUSINESS_CUSTOMER_GRADE_A
    u = await update("u4", "status", status=S.Value("BUSINESS_CUSTOMER_STATUS_POTENTIAL"))
    assert u.grade == pb.BUSINESS_CUSTOMER_GRADE_D
    u = await update("u5", "website", "industry", "founded_date", website="http://x.example.org", industry="auto",
                     founded_date="1669-01-01")
    assert (u.website, u.industry, u.founded_date, u.code) == ("http://x.example.org", "auto", "1669-01-01", c.code)
    same = await update("u6", "industry", industry="auto")  # no change, no timeline entry
    assert same.update_time == u.update_time

    changes = [d for kind, d in await svc.timeline(c.customer_id) if kind == "attribute_changed"]
    assert {"field": "annual_revenue_fen", "from": 50_000 * YUAN, "to": 600_000 * YUAN} in changes
    assert {"field": "grade", "from": "D", "to": "C"} in changes
    assert {"field": "grade", "from": "C", "to": "B"} in changes
    assert {"field": "grade", "from": "A", "to": "D"} in changes
    assert {"field": "status", "from": "intent", "to": "potential"} in changes
    assert {"field": "founded_date", "from": None, "to": "1669-01-01"} in changes
    assert not [d for d in changes if d["field"] == "industry" and d["from"] == "auto"]

    for paths, field in ((("grade",), "update_mask"), (("code",), "update_mask"), (("owner_staff_id",), "update_mask"),
                         (("nonsense",), "update_mask"), ((), "update_mask")):
        err = await rpc_error(svc.business.UpdateBusinessCustomer(pb.UpdateBusinessCustomerRequest(
            request_id=f"bad-{paths}", customer_id=c.customer_id, business_customer=pb.BusinessCustomer(grade=1),
            update_mask=mask(*paths)), metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_field(err) == field
    before = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id),
                                                     metadata=SUPER)).business_customer
    bad_updates = [("website", {"website": "javascript:alert(1)"}), ("cooperation_years", {"cooperation_years": -2}),
                   ("email", {"email": "x@"}), ("name", {"name": ""}), ("status", {"status": 0}),
                   ("payment_days", {"payment_days": 4000})]
    for path, fields in bad_updates:
        err = await rpc_error(update(f"bad-{path}", path, "industry", industry="changed", **fields))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_field(err) == f"business_customer.{path}"
    after = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id),
                                                    metadata=SUPER)).business_customer
    assert after == before


# --- contacts


async def test_one_primary_contact_swapped_in_one_transaction_and_listed_first(svc):
    c = await svc.create("cc")

    async def add(rid: str, name: str, primary: bool = False, **fields) -> pb.Contact:
        reply = await svc.business.CreateContact(pb.CreateContactRequest(
            request_id=rid, customer_id=c.customer_id, name=name, is_primary=primary, **fields), metadata=SUPER)
        return reply.contact

    async def listed(page_size: int = 0) -> list[tuple[str, bool]]:
        out, token = [], ""
        while True:
            page = await svc.business.ListContacts(pb.ListContactsRequest(
                customer_id=c.customer_id, page_size=page_size, page_token=token), metadata=SUPER)
            out += [(x.name, x.is_primary) for x in page.contacts]
            token = page.next_page_token
            if not token:
                return out

    first = await add("k1", "Wang", title="buyer", department="purchasing", mobile="13600000001",
                      landline="0571-88886666", email="Wang@Example.com", wechat="wang_w", birthday="1980-02-29",
                      hobbies="tea", notes="decides on price")
    assert (first.email, first.birthday, first.landline) == ("wang@example.com", "1980-02-29", "0571-88886666")
    second = await add("k2", "Li", primary=True)
    await add("k3", "Zhao")
    assert await listed() == [("Li", True), ("Zhao", False), ("Wang", False)]
    await add("k4", "Chen", primary=True)
    assert await listed(page_size=1) == [("Chen", True), ("Zhao", False), ("Li", False), ("Wang", False)]

    reply = await svc.business.UpdateContact(pb.UpdateContactRequest(
        request_id="k5", contact_id=first.contact_id, contact=pb.Contact(is_primary=True, title="head buyer"),
        update_mask=mask("is_primary", "title")), metadata=SUPER)
    assert reply.contact.is_primary and reply.contact.title == "head buyer"
    assert [x for x in await listed() if x[1]] == [("Wang", True)]
    customer = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id),
                                                       metadata=SUPER)).business_customer
    assert customer.contact_count == 4

    # The database itself refuses a second primary contact (partial unique index).
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError, match="uq_contact_primary|contact.customer_id"):
        async with svc.db.transaction() as session:
            session.add(Contact(customer_id=int(c.customer_id), name="Rogue", is_primary=True, created_at=now,
                                updated_at=now, title="", department="", landline="", wechat="", hobbies="",
                                notes=""))
    # Unsetting is fine; deleting removes it.
    await svc.business.UpdateContact(pb.UpdateContactRequest(
        request_id="k6", contact_id=first.contact_id, contact=pb.Contact(is_primary=False),
        update_mask=mask("is_primary")), metadata=SUPER)
    await svc.business.DeleteContact(pb.DeleteContactRequest(request_id="k7", contact_id=second.contact_id),
                                     metadata=SUPER)
    assert await listed() == [("Chen", False), ("Zhao", False), ("Wang", False)]
    err = await rpc_error(svc.business.GetContact(pb.GetContactRequest(contact_id=second.contact_id), metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND and violated_field(err) == "contact_id"


async def test_concurrent_writers_keep_one_primary_contact_and_a_grade_that_matches_the_numbers(svc):
    c = await svc.create("cw", status=S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"))
    replies = await asyncio.gather(*(svc.business.CreateContact(pb.CreateContactRequest(
        request_id=f"p{i}", customer_id=c.customer_id, name=f"P{i}", is_primary=True), metadata=SUPER)
        for i in range(6)))
    assert all(r.contact.is_primary for r in replies)  # each was primary when it was written
    page = await svc.business.ListContacts(pb.ListContactsRequest(customer_id=c.customer_id), metadata=SUPER)
    assert len(page.contacts) == 6 and [x.is_primary for x in page.contacts].count(True) == 1
    assert page.contacts[0].is_primary

    await asyncio.gather(
        svc.business.UpdateBusinessCustomer(pb.UpdateBusinessCustomerRequest(
            request_id="rev", customer_id=c.customer_id,
            business_customer=pb.BusinessCustomer(annual_revenue_fen=2_000_000 * YUAN),
            update_mask=mask("annual_revenue_fen")), metadata=SUPER),
        svc.business.UpdateBusinessCustomer(pb.UpdateBusinessCustomerRequest(
            request_id="yrs", customer_id=c.customer_id, business_customer=pb.BusinessCustomer(cooperation_years=5),
            update_mask=mask("cooperation_years")), metadata=SUPER))
    got = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id),
                                                  metadata=SUPER)).business_customer
    assert (got.annual_revenue_fen, got.cooperation_years, got.grade) == (
        2_000_000 * YUAN, 5, pb.BUSINESS_CUSTOMER_GRADE_A)


async def test_bad_contacts_are_invalid_argument_and_write_nothing(svc):
    c = await svc.create("cb")
    bad = [({"name": ""}, "name"), ({"mobile": "12345"}, "mobile"), ({"email": "a@b"}, "email"),
           ({"birthday": "1990-02-30"}, "birthday"), ({"landline": "call me"}, "landline"),
           ({"landline": "12"}, "landline"), ({"wechat": "w" * 65}, "wechat")]
    for i, (fields, field) in enumerate(bad):
        fields.setdefault("name", "Someone")
        err = await rpc_error(svc.business.CreateContact(pb.CreateContactRequest(
            request_id=f"bad-{i}", customer_id=c.customer_id, **fields), metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_field(err) == field, fields
    ok = (await svc.business.CreateContact(pb.CreateContactRequest(
        request_id="ok", customer_id=c.customer_id, name="Fine", mobile="13500000000"), metadata=SUPER)).contact
    err = await rpc_error(svc.business.UpdateContact(pb.UpdateContactRequest(
        request_id="bad-u", contact_id=ok.contact_id, contact=pb.Contact(mobile="999", name="New"),
        update_mask=mask("mobile", "name")), metadata=SUPER))
    assert violated_field(err) == "contact.mobile"
    page = await svc.business.ListContacts(pb.ListContactsRequest(customer_id=c.customer_id), metadata=SUPER)
    assert [(x.name, x.mobile) for x in page.contacts] == [("Fine", "13500000000")]


async def test_search_contacts_across_customers_by_name_phone_or_email_in_the_callers_scope(svc):
    s1, s2 = await svc.staff("Sun"), await svc.staff("Qian")
    a = await svc.create("a", metadata=sales(s1), name="A Corp")
    b = await svc.create("b", metadata=sales(s2), name="B Corp")
    for i, (customer, name, mobile, email) in enumerate([
            (a, "Zhang Wei", "13811110000", "zw@a.cn"), (a, "Liu Yang", "13822220000", "ly@a.cn"),
            (b, "Zhang Min", "13833330000", "zm@b.cn"), (b, "Wu Hao", "13844440000", "wh@shared.cn")]):
        await svc.business.CreateContact(pb.CreateContactRequest(
            request_id=f"k{i}", customer_id=customer.customer_id, name=name, mobile=mobile, email=email),
            metadata=SUPER)

    async def search(query: str, metadata=SUPER, page_size: int = 0) -> list[str]:
        out, token = [], ""
        while True:
            page = await svc.business.SearchContacts(pb.SearchContactsRequest(
                query=query, page_size=page_size, page_token=token), metadata=metadata)
            out += [f"{x.name}@{x.customer_name}" for x in page.contacts]
            token = page.next_page_token
            if not token:
                return out

    assert await search("zhang") == ["Zhang Min@B Corp", "Zhang Wei@A Corp"]
    assert await search("1382222") == ["Liu Yang@A Corp"]
    assert await search("SHARED.cn") == ["Wu Hao@B Corp"]
    assert await search("", page_size=1) == ["Wu Hao@B Corp", "Zhang Min@B Corp", "Liu Yang@A Corp",
                                             "Zhang Wei@A Corp"]
    assert await search("zhang", metadata=sales(s1)) == ["Zhang Wei@A Corp"]
    assert await search("%") == []
    first = await svc.business.SearchContacts(pb.SearchContactsRequest(query="zhang", page_size=1), metadata=SUPER)
    for token, query in (("???", ""), (first.next_page_token, "liu")):
        err = await rpc_error(svc.business.SearchContacts(pb.SearchContactsRequest(query=query, page_token=token),
                                                          metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_field(err) == "page_token"


# --- ownership


async def test_sales_see_and_change_only_their_own_customers(svc):
    s1, s2 = await svc.staff("Zhou"), await svc.staff("Wu")
    mine = await svc.create("m", metadata=sales(s1), name="Mine")
    theirs = await svc.create("t", metadata=sales(s2), name="Theirs")
    assert mine.owner_staff_id == s1
    assert [c.name for c in await svc.listed(metadata=sales(s1))] == ["Mine"]
    assert [c.name for c in await svc.listed(metadata=sales(s1), filter=pb.BusinessCustomerFilter(
        owner_staff_ids=[s2]))] == []
    assert {c.name for c in await svc.listed(metadata=SUPER)} == {"Mine", "Theirs"}
    assert {c.name for c in await svc.listed(metadata=MALL_ADMIN)} == {"Mine", "Theirs"}

    denied = [
        svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=theirs.customer_id),
                                         metadata=sales(s1)),
        svc.business.UpdateBusinessCustomer(pb.UpdateBusinessCustomerRequest(
            request_id="x1", customer_id=theirs.customer_id, business_customer=pb.BusinessCustomer(name="Mine now"),
            update_mask=mask("name")), metadata=sales(s1)),
        svc.business.DeleteBusinessCustomer(pb.DeleteBusinessCustomerRequest(
            request_id="x2", customer_id=theirs.customer_id), metadata=sales(s1)),
        svc.business.CreateContact(pb.CreateContactRequest(
            request_id="x3", customer_id=theirs.customer_id, name="Spy"), metadata=sales(s1)),
        svc.business.ListContacts(pb.ListContactsRequest(customer_id=theirs.customer_id), metadata=sales(s1)),
        svc.business.ListOwnershipTransfers(pb.ListOwnershipTransfersRequest(customer_id=theirs.customer_id),
                                            metadata=sales(s1)),
        svc.business.TransferBusinessCustomer(pb.TransferBusinessCustomerRequest(
            request_id="x4", customer_id=mine.customer_id, to_staff_id=s2), metadata=sales(s1)),
        svc.create("x5", metadata=sales(s1), owner_staff_id=s2),
        svc.business.ListBusinessCustomers(pb.ListBusinessCustomersRequest(), metadata=MEMBER),
        svc.create("x6", metadata=MEMBER),
    ]
    for call in denied:
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    got = (await svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=theirs.customer_id),
                                                  metadata=SUPER)).business_customer
    assert got.name == "Theirs" and got.contact_count == 0 and got.owner_staff_id == s2
    assert {c.name for c in await svc.listed()} == {"Mine", "Theirs"}


async def test_transfers_one_at_a_time_and_in_bulk_are_admin_only_and_recorded(svc):
    leaving, heir, other = await svc.staff("Leaving"), await svc.staff("Heir"), await svc.staff("Other")
    gone = await svc.staff("Gone")
    await svc.org.UpdateStaff(org_pb.UpdateStaffRequest(
        request_id="disable", staff=org_pb.Staff(staff_id=gone, disabled=True), update_mask=mask("disabled")),
        metadata=SUPER)
    a = await svc.create("a", metadata=sales(leaving), name="A")
    b = await svc.create("b", metadata=sales(leaving), name="B")
    c = await svc.create("c", metadata=sales(other), name="C")

    one = await svc.business.TransferBusinessCustomer(pb.TransferBusinessCustomerRequest(
        request_id="t1", customer_id=c.customer_id, to_staff_id=leaving, reason="rebalancing"), metadata=SUPER)
    assert one.business_customer.owner_staff_id == leaving
    assert (one.transfer.from_staff_id, one.transfer.to_staff_id, one.transfer.operator_id, one.transfer.reason) == (
        other, leaving, "super-1", "rebalancing")

    for request, code, field in [
        (pb.TransferBusinessCustomerRequest(request_id="e1", customer_id=a.customer_id, to_staff_id="424242"),
         grpc.StatusCode.NOT_FOUND, "to_staff_id"),
        (pb.TransferBusinessCustomerRequest(request_id="e2", customer_id=a.customer_id, to_staff_id=gone),
         grpc.StatusCode.FAILED_PRECONDITION, "to_staff_id"),
        (pb.TransferBusinessCustomerRequest(request_id="e3", customer_id=a.customer_id, to_staff_id=leaving),
         grpc.StatusCode.FAILED_PRECONDITION, "to_staff_id"),
        (pb.TransferBusinessCustomerRequest(request_id="e4", customer_id=a.customer_id, to_staff_id=""),
         grpc.StatusCode.INVALID_ARGUMENT, "to_staff_id"),
    ]:
        err = await rpc_error(svc.business.TransferBusinessCustomer(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)
    for request, code, field in [
        (pb.BulkTransferBusinessCustomersRequest(request_id="e5", to_staff_id=heir),
         grpc.StatusCode.INVALID_ARGUMENT, "from_staff_id"),
        (pb.BulkTransferBusinessCustomersRequest(request_id="e6", from_staff_id=leaving,
                                                 customer_ids=[a.customer_id], to_staff_id=heir),
         grpc.StatusCode.INVALID_ARGUMENT, "from_staff_id"),
        (pb.BulkTransferBusinessCustomersRequest(request_id="e7", customer_ids=[a.customer_id, "99999"],
                                                 to_staff_id=heir), grpc.StatusCode.NOT_FOUND, "customer_ids"),
    ]:
        err = await rpc_error(svc.business.BulkTransferBusinessCustomers(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (code, field)
    err = await rpc_error(svc.business.BulkTransferBusinessCustomers(pb.BulkTransferBusinessCustomersRequest(
        request_id="e8", from_staff_id=leaving, to_staff_id=heir), metadata=sales(heir)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert {x.name for x in await svc.listed(metadata=sales(heir))} == set()

    # The salesperson leaves: everything they own goes to the heir, each transfer recorded.
    bulk = await svc.business.BulkTransferBusinessCustomers(pb.BulkTransferBusinessCustomersRequest(
        request_id="leave", from_staff_id=leaving, to_staff_id=heir, reason="left the company"), metadata=MALL_ADMIN)
    assert sorted(t.customer_id for t in bulk.transfers) == sorted([a.customer_id, b.customer_id, c.customer_id])
    assert {(t.from_staff_id, t.to_staff_id, t.operator_id, t.reason) for t in bulk.transfers} == {
        (leaving, heir, "mall-admin-1", "left the company")}
    assert {x.name for x in await svc.listed(metadata=sales(heir))} == {"A", "B", "C"}
    assert await svc.listed(metadata=sales(leaving)) == []

    # By list: customers already with the target are left alone.
    by_list = await svc.business.BulkTransferBusinessCustomers(pb.BulkTransferBusinessCustomersRequest(
        request_id="list", customer_ids=[a.customer_id, a.customer_id, b.customer_id], to_staff_id=heir),
        metadata=SUPER)
    assert list(by_list.transfers) == []
    by_list = await svc.business.BulkTransferBusinessCustomers(pb.BulkTransferBusinessCustomersRequest(
        request_id="list2", customer_ids=[a.customer_id], to_staff_id=other), metadata=SUPER)
    assert [t.customer_id for t in by_list.transfers] == [a.customer_id]

    history = await svc.business.ListOwnershipTransfers(pb.ListOwnershipTransfersRequest(
        customer_id=c.customer_id), metadata=SUPER)
    assert [(t.from_staff_id, t.to_staff_id) for t in history.transfers] == [(leaving, heir), (other, leaving)]
    page = await svc.business.ListOwnershipTransfers(pb.ListOwnershipTransfersRequest(
        customer_id=a.customer_id, page_size=1), metadata=sales(other))
    assert [(t.from_staff_id, t.to_staff_id) for t in page.transfers] == [(heir, other)]
    page = await svc.business.ListOwnershipTransfers(pb.ListOwnershipTransfersRequest(
        customer_id=a.customer_id, page_size=1, page_token=page.next_page_token), metadata=sales(other))
    assert [(t.from_staff_id, t.to_staff_id) for t in page.transfers] == [(leaving, heir)]
    assert page.next_page_token == ""
    owners = [d for kind, d in await svc.timeline(a.customer_id) if kind == "attribute_changed"]
    assert owners == [{"field": "owner_staff_id", "from": leaving, "to": heir},
                      {"field": "owner_staff_id", "from": heir, "to": other}]


# --- the list


async def test_list_searches_filters_sorts_and_pages(svc):
    now = datetime.now(UTC).replace(microsecond=0)
    s1 = await svc.staff("Owner")
    group = (await svc.classification.CreateCustomerGroup(cls_pb.CreateCustomerGroupRequest(
        request_id="g", name="East"), metadata=SUPER)).group
    specs = [
        ("Alpha Trading", dict(short_name="ALP", industry="retail", status=S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"),
                               annual_revenue_fen=2_000_000 * YUAN, cooperation_years=5, phone="13100000001",
                               last_follow_up_time=ts(now - timedelta(days=10)))),
        ("Beta Motors", dict(short_name="BM", industry="auto", status=S.Value("BUSINESS_CUSTOMER_STATUS_INTENT"),
                             email="sales@beta.example", last_follow_up_time=ts(now - timedelta(days=90)),
                             group_id=group.group_id)),
        ("Gamma 100%_Foods", dict(industry="food", status=S.Value("BUSINESS_CUSTOMER_STATUS_LOST"),
                                  annual_revenue_fen=150_000 * YUAN, owner_staff_id=s1)),
        ("Delta Retail", dict(industry="retail", last_follow_up_time=ts(now - timedelta(days=1)))),
        ("Epsilon", dict(industry="auto", status=S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"),
                         annual_revenue_fen=600_000 * YUAN, cooperation_years=2)),
    ]
    created = {}
    for i, (name, fields) in enumerate(specs):
        created[name] = await svc.create(f"l{i}", name=name, **fields)
    await svc.business.CreateContact(pb.CreateContactRequest(
        request_id="k", customer_id=created["Epsilon"].customer_id, name="Someone"), metadata=SUPER)
    key = (await svc.classification.ListTags(cls_pb.ListTagsRequest(), metadata=SUPER)).tags[0]
    await svc.classification.TagCustomers(cls_pb.TagCustomersRequest(
        request_id="tag", customer_ids=[created["Epsilon"].customer_id, created["Alpha Trading"].customer_id],
        tag_ids=[key.tag_id]), metadata=SUPER)

    async def names(**f) -> list[str]:
        order = {k: f.pop(k) for k in ("order_by", "ascending") if k in f}
        return [c.name for c in await svc.listed(filter=pb.BusinessCustomerFilter(**f), **order)]

    assert await names() == ["Epsilon", "Delta Retail", "Gamma 100%_Foods", "Beta Motors", "Alpha Trading"]
    assert await names(search="alp") == ["Alpha Trading"]                       # short name / name
    assert await names(search=created["Beta Motors"].code) == ["Beta Motors"]   # code
    assert await names(search="1310000") == ["Alpha Trading"]                  # phone
    assert await names(search="BETA.example") == ["Beta Motors"]                # email
    assert await names(search="100%_") == ["Gamma 100%_Foods"]                 # wildcards are literal
    assert await names(search="%") == ["Gamma 100%_Foods"]
    assert await names(statuses=[S.Value("BUSINESS_CUSTOMER_STATUS_DEAL")]) == ["Epsilon", "Alpha Trading"]
    assert await names(grades=[G.Value("BUSINESS_CUSTOMER_GRADE_A"), G.Value("BUSINESS_CUSTOMER_GRADE_B")]) == [
        "Epsilon", "Alpha Trading"]
    assert await names(grades=[G.Value("BUSINESS_CUSTOMER_GRADE_C")]) == ["Gamma 100%_Foods"]
    assert await names(industries=["retail"]) == ["Delta Retail", "Alpha Trading"]
    assert await names(owner_staff_ids=[s1]) == ["Gamma 100%_Foods"]
    assert await names(tag_ids=[key.tag_id]) == ["Epsilon", "Alpha Trading"]
    assert await names(group_ids=[group.group_id]) == ["Beta Motors"]
    assert await names(group_ids=["default"], industries=["auto"]) == ["Epsilon"]
    # Never followed up first, then the longest without a follow-up; descending the reverse.
    follow = pb.BUSINESS_CUSTOMER_ORDER_BY_LAST_FOLLOW_UP_TIME
    assert await names(order_by=follow, ascending=True) == [
        "Gamma 100%_Foods", "Epsilon", "Beta Motors", "Alpha Trading", "Delta Retail"]
    assert await names(order_by=follow) == [
        "Delta Retail", "Alpha Trading", "Beta Motors", "Epsilon", "Gamma 100%_Foods"]
    assert await names(order_by=pb.BUSINESS_CUSTOMER_ORDER_BY_CREATE_TIME, ascending=True) == [
        "Alpha Trading", "Beta Motors", "Gamma 100%_Foods", "Delta Retail", "Epsilon"]

    listed = {c.name: c for c in await svc.listed()}
    assert listed["Epsilon"].contact_count == 1 and [t.name for t in listed["Epsilon"].tags] == [key.name]
    assert listed["Beta Motors"].contact_count == 0 and list(listed["Beta Motors"].tags) == []

    for order_by, ascending in ((follow, True), (follow, False), (0, False), (0, True)):
        seen, token, totals = [], "", set()
        while True:
            page = await svc.business.ListBusinessCustomers(pb.ListBusinessCustomersRequest(
                page_size=2, page_token=token, order_by=order_by, ascending=ascending), metadata=SUPER)
            assert len(page.business_customers) <= 2
            seen += [c.name for c in page.business_customers]
            totals.add(page.total_size)
            token = page.next_page_token
            if not token:
                break
        assert seen == await names(order_by=order_by, ascending=ascending) and totals == {5}

    first = await svc.business.ListBusinessCustomers(pb.ListBusinessCustomersRequest(page_size=2), metadata=SUPER)
    bad_requests = [
        (pb.ListBusinessCustomersRequest(page_token="not-a-token"), "page_token"),
        (pb.ListBusinessCustomersRequest(page_token="e30="), "page_token"),   # {} : not ours
        (pb.ListBusinessCustomersRequest(page_token=first.next_page_token, ascending=True), "page_token"),
        (pb.ListBusinessCustomersRequest(page_token=first.next_page_token,
                                         filter=pb.BusinessCustomerFilter(search="a")), "page_token"),
        (pb.ListBusinessCustomersRequest(page_size=-1), "page_size"),
        (pb.ListBusinessCustomersRequest(order_by=7), "order_by"),
        (pb.ListBusinessCustomersRequest(filter=pb.BusinessCustomerFilter(statuses=[9])), "filter.statuses"),
        (pb.ListBusinessCustomersRequest(filter=pb.BusinessCustomerFilter(grades=[0])), "filter.grades"),
        (pb.ListBusinessCustomersRequest(filter=pb.BusinessCustomerFilter(tag_ids=["x"])), "filter.tag_ids"),
        (pb.ListBusinessCustomersRequest(filter=pb.BusinessCustomerFilter(group_ids=["none"])), "filter.group_ids"),
    ]
    for request, field in bad_requests:
        err = await rpc_error(svc.business.ListBusinessCustomers(request, metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_field(err) == field, request


async def test_statistics_count_by_status_and_grade_in_the_callers_scope(svc):
    s1 = await svc.staff("Stat")
    await svc.create("a", status=S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"), annual_revenue_fen=2_000_000 * YUAN,
                     cooperation_years=4)
    await svc.create("b", status=S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"), annual_revenue_fen=600_000 * YUAN,
                     cooperation_years=2, metadata=sales(s1))
    await svc.create("c", annual_revenue_fen=300_000 * YUAN, metadata=sales(s1))
    gone = await svc.create("d", status=S.Value("BUSINESS_CUSTOMER_STATUS_LOST"), annual_revenue_fen=1)
    await svc.business.DeleteBusinessCustomer(pb.DeleteBusinessCustomerRequest(
        request_id="del", customer_id=gone.customer_id), metadata=SUPER)

    async def stats(metadata=SUPER, **request) -> pb.BusinessCustomerStatistics:
        reply = await svc.business.GetBusinessCustomerStatistics(
            pb.GetBusinessCustomerStatisticsRequest(**request), metadata=metadata)
        return reply.statistics

    everyone = await stats()
    assert everyone.total == 3
    assert {S.Name(x.status): x.count for x in everyone.by_status} == {
        "BUSINESS_CUSTOMER_STATUS_POTENTIAL": 1, "BUSINESS_CUSTOMER_STATUS_INTENT": 0,
        "BUSINESS_CUSTOMER_STATUS_DEAL": 2, "BUSINESS_CUSTOMER_STATUS_LOST": 0}
    assert [(G.Name(x.grade)[-1], x.count) for x in everyone.by_grade] == [("A", 1), ("B", 1), ("C", 0), ("D", 1)]
    assert everyone.total_annual_revenue_fen == 2_900_000 * YUAN
    assert everyone.average_cooperation_years == pytest.approx(2.0)
    assert everyone.compute_time.seconds > 0

    mine = await stats(metadata=sales(s1))
    assert mine.total == 2 and mine.total_annual_revenue_fen == 900_000 * YUAN
    assert mine.average_cooperation_years == pytest.approx(1.0)
    assert (await stats(owner_staff_id=s1)).total == 2
    assert (await stats(metadata=sales(s1), owner_staff_id="super-1")).total == 0
    empty = await stats(owner_staff_id="nobody")
    assert empty.total == 0 and empty.average_cooperation_years == 0
    err = await rpc_error(svc.business.GetBusinessCustomerStatistics(pb.GetBusinessCustomerStatisticsRequest(),
                                                                     metadata=MEMBER))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


# --- delete


async def test_soft_delete_removes_contacts_and_tags_releases_phone_and_cannot_be_undone(svc):
    c = await svc.create("d", name="Doomed", phone="13200000001", email="d@d.cn")
    keep = await svc.create("k", name="Kept")
    for i in range(2):
        await svc.business.CreateContact(pb.CreateContactRequest(
            request_id=f"c{i}", customer_id=c.customer_id, name=f"P{i}", is_primary=i == 0), metadata=SUPER)
    tags = (await svc.classification.ListTags(cls_pb.ListTagsRequest(page_size=2), metadata=SUPER)).tags
    await svc.classification.TagCustomers(cls_pb.TagCustomersRequest(
        request_id="t", customer_ids=[c.customer_id, keep.customer_id], tag_ids=[t.tag_id for t in tags]),
        metadata=SUPER)

    reply = await svc.business.DeleteBusinessCustomer(pb.DeleteBusinessCustomerRequest(
        request_id="del", customer_id=c.customer_id), metadata=SUPER)
    assert reply.customer_id == c.customer_id and reply.delete_time.seconds > 0
    again = await svc.business.DeleteBusinessCustomer(pb.DeleteBusinessCustomerRequest(
        request_id="del", customer_id=c.customer_id), metadata=SUPER)
    assert again == reply  # the same request_id replays

    for call in (
        svc.business.GetBusinessCustomer(pb.GetBusinessCustomerRequest(customer_id=c.customer_id), metadata=SUPER),
        svc.business.DeleteBusinessCustomer(pb.DeleteBusinessCustomerRequest(
            request_id="del2", customer_id=c.customer_id), metadata=SUPER),
        svc.business.UpdateBusinessCustomer(pb.UpdateBusinessCustomerRequest(
            request_id="up", customer_id=c.customer_id, business_customer=pb.BusinessCustomer(name="Back"),
            update_mask=mask("name")), metadata=SUPER),
        svc.business.CreateContact(pb.CreateContactRequest(request_id="c9", customer_id=c.customer_id, name="X"),
                                   metadata=SUPER),
    ):
        err = await rpc_error(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND
    assert [x.name for x in await svc.listed()] == ["Kept"]
    assert (await svc.business.SearchContacts(pb.SearchContactsRequest(), metadata=SUPER)).contacts == []
    async with svc.db.read() as session:
        assert (await session.scalars(select(Contact).where(Contact.customer_id == int(c.customer_id)))).all() == []
        remaining = (await session.scalars(select(CustomerTag.customer_id))).all()
    assert set(remaining) == {int(keep.customer_id)}
    kinds = [kind for kind, _ in await svc.timeline(c.customer_id)]
    assert kinds.count("tag_removed") == 2 and kinds[-1] == "deleted"
    reused = await svc.create("new", name="Reborn", phone="13200000001", email="d@d.cn")
    assert reused.code != c.code
