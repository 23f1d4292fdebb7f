"""Business customer import (document 003, Q2) through the member import's machinery, over gRPC, on SQLite and
PostgreSQL: Chinese and English headers, CSV in any encoding and Excel, the preview and its counts, rows keyed on
the customer code or the full name, row errors naming the field, owners and tags, and who may import."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass

import grpc
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from crowdpack.customer.v1 import business_customer_service_pb2 as bpb
from crowdpack.customer.v1 import business_customer_service_pb2_grpc as bpb_grpc
from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.events.v1.customer_events_pb2 import ImportCompleted
from services.common import events as subjects
from services.common.auth import Caller, Role
from services.common.db import Database
from services.customer.business.models import BusinessProfile
from services.customer.config import CustomerSettings
from services.customer.imports.models import ImportJob
from services.customer.models import OutboxEvent, TimelineEntry
from services.customer.service import build_spec
from tests.support.customer import SUPER, mall_admin, rpc_error, violated_field
from tests.support.identity import signed
from tests.support.runtime import running_service

pytestmark = pytest.mark.database("customer")

BUSINESS = pb.IMPORT_KIND_BUSINESS_CUSTOMERS
DONE = (pb.IMPORT_JOB_STATE_SUCCEEDED, pb.IMPORT_JOB_STATE_FAILED)
S = bpb.BusinessCustomerStatus
G = bpb.BusinessCustomerGrade
YUAN = 100


@dataclass
class Stubs:
    imports: pb_grpc.ImportServiceStub
    business: bpb_grpc.BusinessCustomerServiceStub
    org: org_grpc.OrganizationServiceStub
    db: Database

    async def staff(self, name: str, phone: str) -> str:
        reply = await self.org.CreateStaff(org_pb.CreateStaffRequest(
            request_id=f"staff-{name}", name=name, phone=phone, role=org_pb.STAFF_ROLE_SALES), metadata=SUPER)
        return reply.staff.staff_id

    async def upload(self, data: bytes, name: str, metadata=SUPER) -> pb.ImportFile:
        return (await self.imports.UploadImportFile(iter([pb.UploadImportFileRequest(
            request_id=f"up-{name}-{hash(data)}", file_name=name, chunk=data)]), metadata=metadata)).file

    async def run(self, file_id: str, request_id: str = "start", **kwargs) -> pb.ImportJob:
        kwargs.setdefault("mode", pb.IMPORT_MODE_NORMAL)
        job = (await self.imports.StartImport(pb.StartImportRequest(
            request_id=request_id, file_id=file_id, kind=BUSINESS, **kwargs), metadata=SUPER)).job
        assert job.kind == BUSINESS
        for _ in range(600):
            job = (await self.imports.GetImportJob(pb.GetImportJobRequest(job_id=job.job_id), metadata=SUPER)).job
            if job.state in DONE:
                assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job.error_message
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"import job {job.job_id} did not finish")

    async def issues(self, job_id: str) -> list[tuple[int, int, str]]:
        reply = await self.imports.ListImportIssues(pb.ListImportIssuesRequest(job_id=job_id, page_size=100),
                                                    metadata=SUPER)
        return [(i.row_number, i.status, i.field) for i in reply.issues]

    async def customers(self) -> dict[str, bpb.BusinessCustomer]:
        reply = await self.business.ListBusinessCustomers(bpb.ListBusinessCustomersRequest(page_size=100),
                                                          metadata=SUPER)
        return {c.name: c for c in reply.business_customers}

    async def count(self, model) -> int:
        async with self.db.read() as session:
            return await session.scalar(select(func.count()).select_from(model))


@pytest.fixture
async def svc(database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        yield Stubs(pb_grpc.ImportServiceStub(channel), bpb_grpc.BusinessCustomerServiceStub(channel),
                    org_grpc.OrganizationServiceStub(channel), rt.ctx.db)


def csv_bytes(rows: list[list[str]], encoding: str) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


HEADER = ["客户编号", "客户名称", "客户简称", "客户类型", "所属行业", "信用额度（元）", "账期", "负责销售", "客户状态",
          "年成交额", "合作年限", "手机号", "公司网址", "成立日期"]


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
async def test_a_chinese_csv_in_any_encoding_is_previewed_then_imported_row_by_row(svc, encoding):
    zhou = await svc.staff("周销售", "13700000001")
    existing = (await svc.business.CreateBusinessCustomer(bpb.CreateBusinessCustomerRequest(
        request_id="existing", name="老客户有限公司", industry="电子", phone="13900000077"),
        metadata=SUPER)).business_customer
    named = (await svc.business.CreateBusinessCustomer(bpb.CreateBusinessCustomerRequest(
        request_id="named", name="同名公司"), metadata=SUPER)).business_customer
    rows = [
        HEADER,
        # 2: new, owned by Zhou (by mobile), grade A.
        ["", "杭州新客户有限公司", "杭新", "企业", "制造", "1,000,000", "30", "13700000001", "成交客户", "1200000",
         "5", "13900000001", "https://hz.example.com", "2010/5/4"],
        # 3: keyed on the code: updates the existing customer, which moves to Zhou by name.
        [existing.code, "", "", "", "汽车", "", "", "周销售", "", "", "", "", "", ""],
        # 4: keyed on the name: updates it; nothing else changes.
        ["", "同名公司", "", "", "", "", "", "", "", "", "", "", "", ""],
        # 5: the same name again: a duplicate.
        ["", "同名公司", "", "", "", "", "", "", "", "", "", "", "", ""],
        # 6: a bad amount; 7: an unknown status; 8: neither code nor name; 9: an unknown owner.
        ["", "坏金额", "", "", "", "12.345", "", "", "", "", "", "", "", ""],
        ["", "坏状态", "", "", "", "", "", "", "合作中", "", "", "", "", ""],
        ["", "", "无名", "", "", "", "", "", "", "", "", "", "", ""],
        ["", "坏负责人", "", "", "", "", "", "某人", "", "", "", "", "", ""],
        # 10: an unknown code; 11: a phone a stored customer holds; 12: empty.
        ["CUS202001010001", "", "", "", "", "", "", "", "", "", "", "", "", ""],
        ["", "撞号公司", "", "", "", "", "", "", "", "", "", "13900000077", "", ""],
        ["", "", "", "", "", "", "", "", "", "", "", "", "", ""],
    ]
    uploaded = await svc.upload(csv_bytes(rows, encoding), "客户.csv")

    preview = await svc.imports.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id, kind=BUSINESS),
                                              metadata=SUPER)
    assert [c.field for c in preview.columns] == [
        "code", "name", "short_name", "type", "industry", "credit_limit_fen", "payment_days", "owner_staff_id",
        "status", "annual_revenue_fen", "cooperation_years", "phone", "website", "founded_date"]
    # The preview cannot know stored data: the unknown code and the taken phone pass it, as in the member import.
    assert (preview.counts.scanned, preview.counts.to_import, preview.counts.duplicate, preview.counts.invalid) == (
        11, 5, 1, 5)
    assert [(r.row_number, r.status) for r in preview.rows][:5] == [
        (2, pb.IMPORT_ROW_STATUS_OK), (3, pb.IMPORT_ROW_STATUS_OK), (4, pb.IMPORT_ROW_STATUS_OK),
        (5, pb.IMPORT_ROW_STATUS_DUPLICATE), (6, pb.IMPORT_ROW_STATUS_INVALID)]
    assert "credit_limit_fen" in preview.rows[4].reason
    assert len(await svc.customers()) == 2 and await svc.count(ImportJob) == 0

    job = await svc.run(uploaded.file_id, tag_name="展会导入")
    assert (job.created, job.updated, job.unchanged, job.duplicate, job.invalid, job.conflict, job.processed_rows) == (
        1, 1, 1, 1, 5, 2, 11)
    assert await svc.issues(job.job_id) == [
        (5, pb.IMPORT_ROW_STATUS_DUPLICATE, "name"), (6, pb.IMPORT_ROW_STATUS_INVALID, "credit_limit_fen"),
        (7, pb.IMPORT_ROW_STATUS_INVALID, "status"), (8, pb.IMPORT_ROW_STATUS_INVALID, "name"),
        (9, pb.IMPORT_ROW_STATUS_INVALID, "owner_staff_id"), (10, pb.IMPORT_ROW_STATUS_CONFLICT, "code"),
        (11, pb.IMPORT_ROW_STATUS_CONFLICT, "phone"), (12, pb.IMPORT_ROW_STATUS_EMPTY, "")]

    found = await svc.customers()
    new = found[rows[1][1]]
    assert new.code.startswith("CUS") and new.code not in (existing.code, named.code)
    assert (new.short_name, new.type, new.industry, new.credit_limit_fen, new.payment_days, new.owner_staff_id,
            new.status, new.annual_revenue_fen, new.cooperation_years, new.grade, new.phone, new.website,
            new.founded_date, new.created_by) == (
        "杭新", bpb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE, "制造", 1_000_000 * YUAN, 30, zhou,
        S.Value("BUSINESS_CUSTOMER_STATUS_DEAL"), 1_200_000 * YUAN, 5, G.Value("BUSINESS_CUSTOMER_GRADE_A"),
        "13900000001", "https://hz.example.com", "2010-05-04", "super-1")
    old = found[existing.name]
    assert (old.industry, old.owner_staff_id) == ("汽车", zhou)
    assert {t.name for t in new.tags} == {t.name for t in old.tags} == {t.name for t in found["同名公司"].tags} == {
        "展会导入"}
    # The owner change is an administrator's transfer: recorded and announced.
    history = (await svc.business.ListOwnershipTransfers(bpb.ListOwnershipTransfersRequest(
        customer_id=existing.customer_id), metadata=SUPER)).transfers
    assert [(t.from_staff_id, t.to_staff_id, t.requested_by, t.reason) for t in history] == [
        ("super-1", zhou, "super-1", f"import job {job.job_id}")]
    async with svc.db.read() as session:
        kinds = (await session.scalars(select(TimelineEntry.detail).where(
            TimelineEntry.customer_id == int(new.customer_id), TimelineEntry.kind == "created"))).all()
        owner_events = (await session.scalars(select(OutboxEvent.subject).where(
            OutboxEvent.subject == subjects.BUSINESS_OWNER_CHANGED))).all()
        codes = (await session.scalars(select(BusinessProfile.code))).all()
        completed = (await session.scalars(select(OutboxEvent.payload).where(
            OutboxEvent.subject == subjects.IMPORT_COMPLETED))).all()
    assert json.loads(kinds[0])["import_job_id"] == job.job_id
    assert len(owner_events) == 1
    [done] = [ImportCompleted.FromString(p) for p in completed]
    assert (done.kind, done.created, done.updated, done.skipped) == ("business_customers", 1, 1, 8)
    assert len(codes) == len(set(codes)) == 3


async def test_an_excel_file_with_english_headers_is_imported(svc):
    book = Workbook()
    sheet = book.active
    sheet.append(["Customer Name", "Type", "Status", "Annual Revenue", "Cooperation Years", "Credit Limit", "Email"])
    sheet.append(["Shenzhen Parts Ltd", "enterprise", "intent", 600000, 2, 50000.5, "Buyer@Parts.example.com"])
    sheet.append(["Solo Trader", "individual", "", "", "", "", ""])
    data = io.BytesIO()
    book.save(data)
    uploaded = await svc.upload(data.getvalue(), "customers.xlsx")
    assert uploaded.format == pb.IMPORT_FORMAT_XLSX
    job = await svc.run(uploaded.file_id)
    assert (job.created, job.invalid) == (2, 0)
    found = await svc.customers()
    parts = found["Shenzhen Parts Ltd"]
    assert (parts.type, parts.status, parts.annual_revenue_fen, parts.cooperation_years, parts.credit_limit_fen,
            parts.email, parts.owner_staff_id) == (
        bpb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE, S.Value("BUSINESS_CUSTOMER_STATUS_INTENT"), 600_000 * YUAN, 2,
        5_000_050, "buyer@parts.example.com", "super-1")
    assert parts.grade == G.Value("BUSINESS_CUSTOMER_GRADE_B")
    solo = found["Solo Trader"]
    assert (solo.type, solo.status, solo.grade) == (bpb.BUSINESS_CUSTOMER_TYPE_INDIVIDUAL,
                                                    S.Value("BUSINESS_CUSTOMER_STATUS_POTENTIAL"),
                                                    G.Value("BUSINESS_CUSTOMER_GRADE_D"))
    # The same file again: every row finds its customer by name, nothing changes.
    again = await svc.run(uploaded.file_id, request_id="again")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


async def test_bad_requests_and_callers_other_than_super_admins_are_refused_and_start_nothing(svc):
    data = csv_bytes([["客户名称"], ["甲公司"]], "utf-8")
    uploaded = await svc.upload(data, "b.csv")
    members_file = await svc.upload(csv_bytes([["手机号", "姓名"], ["13900000009", "张三"]], "utf-8"), "m.csv")
    sales = signed(Caller(staff_id="5", role=Role.SALES))
    for metadata in (mall_admin("1"), sales):
        for call in (
            svc.imports.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id, kind=BUSINESS),
                                      metadata=metadata),
            svc.imports.StartImport(pb.StartImportRequest(request_id="x", file_id=uploaded.file_id, kind=BUSINESS,
                                                          mode=pb.IMPORT_MODE_NORMAL), metadata=metadata),
            svc.upload(data, "other.csv", metadata=metadata),
        ):
            assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    for request, field in [
        (pb.StartImportRequest(request_id="f", file_id=uploaded.file_id, kind=BUSINESS, mode=pb.IMPORT_MODE_FAST),
         "mode"),
        (pb.StartImportRequest(request_id="k", file_id=uploaded.file_id, kind=9, mode=pb.IMPORT_MODE_NORMAL), "kind"),
        # A member file has no code or name column for a business customer import.
        (pb.StartImportRequest(request_id="m", file_id=members_file.file_id, kind=BUSINESS,
                               mode=pb.IMPORT_MODE_NORMAL), "file"),
    ]:
        err = await rpc_error(svc.imports.StartImport(request, metadata=SUPER))
        assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    err = await rpc_error(svc.imports.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id, kind=7),
                                                    metadata=SUPER))
    assert (err.code(), violated_field(err)) == (grpc.StatusCode.INVALID_ARGUMENT, "kind")
    assert await svc.count(ImportJob) == 0
    assert await svc.customers() == {}
    # Members stay the default kind.
    preview = await svc.imports.PreviewImport(pb.PreviewImportRequest(file_id=members_file.file_id), metadata=SUPER)
    assert preview.counts.to_import == 1
