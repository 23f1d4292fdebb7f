"""Member import over gRPC: encodings, XLSX, header names, create vs update, skipped rows, preview, tags,
normal and fast modes, job progress, a job killed mid-way, malformed files, and the CLI."""

from __future__ import annotations

import asyncio
import codecs
import io
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as mpb
from crowdpack.customer.v1 import member_service_pb2_grpc as mpb_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.customer.v1 import settings_service_pb2 as set_pb
from crowdpack.customer.v1 import settings_service_pb2_grpc as set_grpc
from crowdpack.ledger.v1 import ledger_service_pb2 as ledger_pb
from crowdpack.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from services.common import events as subjects
from services.common.db import Database
from services.customer.classification.models import CustomerTag, Tag
from services.customer.config import CustomerSettings
from services.customer.crowds.index import CrowdIndex
from services.customer.imports import writer
from services.customer.imports.jobs import ImportRunner
from services.customer.models import CustomerStats, OutboxEvent
from services.customer.service import build_spec
from services.ledger.config import LedgerSettings
from services.ledger.models import Account, MemberState
from services.ledger.models import OutboxEvent as LedgerOutbox
from services.ledger.models import ProcessedMessage as Processed
from services.ledger.service import build_spec as ledger_spec
from tests.support.crowd_index import contents, fresh, wait_until
from tests.support.customer import SUPER, mall_admin, mask, rpc_error
from tests.support.runtime import running_service
from tests.support.waiting import caught_up

pytestmark = pytest.mark.database("customer")


DONE = (pb.IMPORT_JOB_STATE_SUCCEEDED, pb.IMPORT_JOB_STATE_FAILED)


@dataclass
class Imports:
    stub: pb_grpc.ImportServiceStub
    members: mpb_grpc.MemberServiceStub
    org: org_grpc.OrganizationServiceStub
    settings: set_grpc.SettingsServiceStub
    db: Database
    runner: ImportRunner
    address: str
    crowd: CrowdIndex

    async def upload(self, data: bytes, name: str = "user_2026-01-01.csv", request_id: str = "",
                     metadata=SUPER) -> pb.ImportFile:
        def messages():
            step = 64 * 1024
            yield pb.UploadImportFileRequest(request_id=request_id or f"up-{name}-{len(data)}-{hash(data)}",
                                             file_name=name, chunk=data[:step])
            for start in range(step, len(data), step):
                yield pb.UploadImportFileRequest(chunk=data[start:start + step])

        return (await self.stub.UploadImportFile(messages(), metadata=metadata)).file

    async def start(self, file_id: str, mode: int = pb.IMPORT_MODE_NORMAL, **kwargs) -> pb.ImportJob:
        reply = await self.stub.StartImport(pb.StartImportRequest(
            request_id=f"start-{file_id}-{mode}-{sorted(kwargs.items())}", file_id=file_id, mode=mode, **kwargs),
            metadata=SUPER)
        return reply.job

    async def finished(self, job_id: str) -> pb.ImportJob:
        for _ in range(600):
            job = (await self.stub.GetImportJob(pb.GetImportJobRequest(job_id=job_id), metadata=SUPER)).job
            if job.state in DONE:
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"import job {job_id} did not finish")

    async def run(self, data: bytes, name: str = "user_2026-01-01.csv", mode: int = pb.IMPORT_MODE_NORMAL,
                  **kwargs) -> pb.ImportJob:
        uploaded = await self.upload(data, name)
        job = await self.finished((await self.start(uploaded.file_id, mode, **kwargs)).job_id)
        assert job.state == pb.IMPORT_JOB_STATE_SUCCEEDED, job.error_message
        return job

    async def issues(self, job_id: str) -> list[pb.ImportIssue]:
        out, token = [], ""
        while True:
            page = await self.stub.ListImportIssues(pb.ListImportIssuesRequest(job_id=job_id, page_size=3,
                                                                               page_token=token), metadata=SUPER)
            out += list(page.issues)
            token = page.next_page_token
            if not token:
                return out

    async def all_members(self) -> list[m.Member]:
        out, token = [], ""
        while True:
            page = await self.members.ListMembers(mpb.ListMembersRequest(page_size=1000, page_token=token),
                                                  metadata=SUPER)
            out += list(page.members)
            token = page.next_page_token
            if not token:
                return sorted(out, key=lambda x: int(x.member_id))

    async def by_phone(self, phone: str) -> m.Member:
        found = [x for x in await self.all_members() if x.phone == phone]
        assert len(found) == 1, phone
        return found[0]

    async def subjects(self) -> Counter:
        async with self.db.read() as session:
            return Counter((await session.scalars(select(OutboxEvent.subject))).all())


@pytest.fixture
async def imports(database_url, nats_url, tmp_path):
    settings = CustomerSettings(grpc_port=0, metrics_port=0, database_url=database_url, outbox_poll_s=0.05,
                                export_max_rows=5)
    async with running_service(build_spec, settings, nats_url=nats_url, state_dir=tmp_path) as (rt, channel):
        yield Imports(pb_grpc.ImportServiceStub(channel), mpb_grpc.MemberServiceStub(channel),
                      org_grpc.OrganizationServiceStub(channel), set_grpc.SettingsServiceStub(channel), rt.ctx.db,
                      rt.ctx.extras["imports"], f"127.0.0.1:{rt.port}", rt.ctx.extras["crowd_index"])


def csv_file(rows: list[list[str]], encoding: str = "utf-8", bom: bool = False) -> bytes:
    text = "\r\n".join(",".join(cells) for cells in rows) + "\r\n"
    return (codecs.BOM_UTF8 if bom else b"") + text.encode(encoding)


CHINESE = [["手机号", "邮箱", "姓名", "性别", "生日", "openid"],
           ["13800000001", "Li.Lei@Example.com", "李雷", "男", "1990-05-01", "oAbC-Case"],
           ["13800000002", "", "韩梅梅", "女", "1992/7/9", ""],
           ["", "wang@example.com", "王芳", "未知", "", ""]]


@pytest.mark.parametrize("encoding,codec,bom", [
    (pb.IMPORT_ENCODING_UTF8, "utf-8", False), (pb.IMPORT_ENCODING_UTF8, "utf-8", True),
    (pb.IMPORT_ENCODING_GB18030, "gb18030", False), (pb.IMPORT_ENCODING_BIG5, "big5", False)])
async def test_each_encoding_is_detected_and_imported(imports, encoding, codec, bom):
    traditional = {"韩梅梅": "韓梅梅", "李雷": "李雷", "王芳": "王芳"}
    rows = CHINESE if codec != "big5" else [[traditional.get(c, c) for c in r] for r in CHINESE]
    rows = [r[:] for r in rows]
    if codec == "big5":
        rows[0] = ["手機號", "郵箱", "姓名", "性別", "生日", "openid"]
        rows[1][3], rows[2][3], rows[3][3] = "male", "female", "unknown"
    data = csv_file(rows, codec, bom)
    uploaded = await imports.upload(data)
    assert uploaded.format == pb.IMPORT_FORMAT_CSV and uploaded.detected_encoding == encoding
    assert uploaded.row_count == 3
    fields = [c.field for c in uploaded.columns]
    if codec != "big5":
        assert fields == ["phone", "email", "name", "gender", "birthday", "wechat_openid"]
    job = await imports.finished((await imports.start(uploaded.file_id)).job_id)
    assert (job.state, job.created, job.total_rows, job.processed_rows) == (pb.IMPORT_JOB_STATE_SUCCEEDED, 3, 3, 3)
    assert job.encoding == encoding
    li = await imports.by_phone("13800000001")
    assert li.name == "李雷" and li.email == "li.lei@example.com" and li.gender == m.GENDER_MALE
    assert li.birthday == "1990-05-01" and li.wechat_openid == "oAbC-Case"
    han = await imports.by_phone("13800000002")
    assert han.name == rows[2][2] and han.birthday == "1992-07-09" and han.gender == m.GENDER_FEMALE
    wang = [x for x in await imports.all_members() if x.email == "wang@example.com"][0]
    assert wang.phone == "" and wang.gender == m.GENDER_UNKNOWN
    assert li.review_status == m.REVIEW_STATUS_APPROVED and li.registration_time.ToSeconds() > 0
    assert not li.card.opened


async def test_the_encoding_can_be_overridden_and_a_wrong_one_writes_nothing(imports):
    data = csv_file(CHINESE, "gb18030")
    uploaded = await imports.upload(data)
    err = await rpc_error(imports.stub.StartImport(pb.StartImportRequest(
        request_id="wrong", file_id=uploaded.file_id, mode=pb.IMPORT_MODE_NORMAL,
        encoding=pb.IMPORT_ENCODING_UTF8), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("encoding: ")
    assert "line 1, byte 0" in err.details()
    jobs = await imports.stub.ListImportJobs(pb.ListImportJobsRequest(), metadata=SUPER)
    assert list(jobs.jobs) == [] and await imports.all_members() == []
    # Previewed as UTF-8 the file is shown garbled (U+FFFD where bytes do not decode), with a warning, not an error.
    garbled = await imports.stub.PreviewImport(pb.PreviewImportRequest(
        file_id=uploaded.file_id, encoding=pb.IMPORT_ENCODING_UTF8), metadata=SUPER)
    assert garbled.encoding == pb.IMPORT_ENCODING_UTF8 and "line 1, byte 0" in garbled.warning
    assert garbled.counts.scanned == 3 and garbled.counts.invalid == 3 and garbled.counts.to_import == 0
    assert all("\ufffd" in c.header for c in garbled.columns if c.header not in ("openid",))
    first = set(garbled.rows[0].cells.values())
    assert "13800000001" in first and any("\ufffd" in v for v in first)  # 李雷 is unreadable as UTF-8
    assert [r.reason for r in garbled.rows] == [garbled.warning] * 3
    # Read as Big5 it decodes, but the Chinese header is garbled: no key column, said as a warning too.
    big5 = await imports.stub.PreviewImport(pb.PreviewImportRequest(
        file_id=uploaded.file_id, encoding=pb.IMPORT_ENCODING_BIG5), metadata=SUPER)
    assert big5.warning.startswith("no phone or email column") and big5.counts.invalid == 3
    # The right encoding: no warning; starting with a wrong one is still refused.
    right = await imports.stub.PreviewImport(pb.PreviewImportRequest(
        file_id=uploaded.file_id, encoding=pb.IMPORT_ENCODING_GB18030), metadata=SUPER)
    assert right.warning == "" and right.counts.to_import == 3
    err = await rpc_error(imports.stub.StartImport(pb.StartImportRequest(
        request_id="big5", file_id=uploaded.file_id, mode=pb.IMPORT_MODE_NORMAL,
        encoding=pb.IMPORT_ENCODING_BIG5), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no phone or email column" in err.details()
    assert list((await imports.stub.ListImportJobs(pb.ListImportJobsRequest(), metadata=SUPER)).jobs) == []
    job = await imports.finished((await imports.start(uploaded.file_id,
                                                      encoding=pb.IMPORT_ENCODING_GB18030)).job_id)
    assert job.created == 3


async def test_xlsx_with_english_headers_in_any_case(imports):
    book = Workbook()
    sheet = book.active
    sheet.append(["PHONE", "E-Mail", "Name", "Real_Name", "GENDER", "Birthday", "UnionID", "Level", "Note"])
    sheet.append([13900000001, "Ann@Example.com", "Ann", "Ann Lee", "Female", datetime(1991, 3, 4), "uNiOn1", 0, "x"])
    sheet.append(["13900000002", None, "Bob", None, "MALE", "1985-12-30", None, None, None])
    sheet.append([None, None, None, None, None, None, None, None, None])
    buffer = io.BytesIO()
    book.save(buffer)
    uploaded = await imports.upload(buffer.getvalue(), "user_2026-01-02.xlsx")
    assert uploaded.format == pb.IMPORT_FORMAT_XLSX and uploaded.row_count == 3
    assert [c.field for c in uploaded.columns] == ["phone", "email", "name", "real_name", "gender", "birthday",
                                                   "wechat_unionid", "level", ""]
    job = await imports.finished((await imports.start(uploaded.file_id)).job_id)
    assert (job.created, job.invalid) == (2, 1)
    ann = await imports.by_phone("13900000001")
    assert (ann.email, ann.real_name, ann.gender, ann.birthday, ann.wechat_unionid) == (
        "ann@example.com", "Ann Lee", m.GENDER_FEMALE, "1991-03-04", "uNiOn1")
    assert [(i.row_number, i.status, i.reason) for i in await imports.issues(job.job_id)] == [
        (4, pb.IMPORT_ROW_STATUS_EMPTY, "empty row")]


async def test_existing_members_are_matched_by_phone_then_email(imports):
    a = (await imports.members.CreateMember(mpb.CreateMemberRequest(
        request_id="a", phone="13700000001", email="a@example.com", name="old a"), metadata=SUPER)).member
    b = (await imports.members.CreateMember(mpb.CreateMemberRequest(
        request_id="b", email="b@example.com", name="old b"), metadata=SUPER)).member
    c = (await imports.members.CreateMember(mpb.CreateMemberRequest(
        request_id="c", phone="13700000003", name="same"), metadata=SUPER)).member
    job = await imports.run(csv_file([
        ["phone", "email", "name", "openid"],
        ["13700000001", "", "new a", "OpenID-A"],     # phone -> a
        ["13700000002", "B@Example.COM", "new b", ""],  # no such phone, email -> b, which gets the phone
        ["13700000003", "", "same", ""],               # c, nothing changes
        ["13700000004", "d@example.com", "d", ""],     # new
    ]))
    assert (job.created, job.updated, job.unchanged) == (1, 2, 1)
    members = {x.member_id: x for x in await imports.all_members()}
    assert len(members) == 4
    assert (members[a.member_id].name, members[a.member_id].wechat_openid) == ("new a", "OpenID-A")
    assert members[a.member_id].email == "a@example.com"
    assert (members[b.member_id].name, members[b.member_id].phone) == ("new b", "13700000002")
    assert members[c.member_id].update_time == c.update_time


@pytest.mark.parametrize("batch", [500, 3])
async def test_skipped_rows_are_reported_with_row_number_and_reason(imports, batch):
    imports.runner.normal_batch = batch  # in batches of 3, duplicates across batches are still found
    job = await imports.run(csv_file([
        ["Phone", "Email", "Name", "Gender"],
        ["13600000001", "", "ok", ""],
        ["", "", "", ""],
        ["12345", "", "bad phone", ""],
        ["", "not-an-email", "bad email", ""],
        ["", "", "no key", ""],
        ["13600000001", "", "dup phone", ""],
        ["13600000002", "X@Example.com", "ok 2", ""],
        ["13600000003", "x@example.com", "dup email", ""],
        ["13600000004", "", "bad gender", "alien"],
    ]))
    assert (job.created, job.invalid, job.duplicate, job.total_rows) == (2, 5, 2, 9)
    issues = [(i.row_number, i.status, i.field) for i in await imports.issues(job.job_id)]
    assert issues == [(3, pb.IMPORT_ROW_STATUS_EMPTY, ""), (4, pb.IMPORT_ROW_STATUS_INVALID, "phone"),
                      (5, pb.IMPORT_ROW_STATUS_INVALID, "email"), (6, pb.IMPORT_ROW_STATUS_INVALID, "phone"),
                      (7, pb.IMPORT_ROW_STATUS_DUPLICATE, "phone"), (9, pb.IMPORT_ROW_STATUS_DUPLICATE, "email"),
                      (10, pb.IMPORT_ROW_STATUS_INVALID, "gender")]
    reasons = {i.row_number: i.reason for i in await imports.issues(job.job_id)}
    assert reasons[7] == "same phone as row 2" and reasons[9] == "same email as row 8"
    assert "11-digit" in reasons[4]


async def test_conflicts_with_stored_customers_are_reported(imports):
    await imports.members.CreateMember(mpb.CreateMemberRequest(request_id="p", phone="13500000001"), metadata=SUPER)
    await imports.members.CreateMember(mpb.CreateMemberRequest(request_id="e", email="e@example.com"), metadata=SUPER)
    job = await imports.run(csv_file([["phone", "email"], ["13500000001", "e@example.com"]]))
    assert (job.created, job.updated, job.conflict) == (0, 0, 1)
    [issue] = await imports.issues(job.job_id)
    assert (issue.row_number, issue.status, issue.field) == (2, pb.IMPORT_ROW_STATUS_CONFLICT, "email")


async def test_preview_shows_twenty_rows_and_counts_and_writes_nothing(imports):
    rows = [["手机号", "姓名"]] + [[f"1340000{i:04d}", f"n{i}"] for i in range(25)]
    rows[5] = ["1340000000x", "bad"]
    rows[7] = [rows[1][0], "dup"]
    rows.append(["", ""])
    uploaded = await imports.upload(csv_file(rows, "gb18030"))
    preview = await imports.stub.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id), metadata=SUPER)
    assert preview.encoding == pb.IMPORT_ENCODING_GB18030
    assert (preview.counts.scanned, preview.counts.duplicate, preview.counts.invalid, preview.counts.to_import) == (
        26, 1, 2, 23)
    assert len(preview.rows) == 20
    assert [r.row_number for r in preview.rows] == list(range(2, 22))
    assert dict(preview.rows[0].cells) == {"手机号": "13400000000", "姓名": "n0"}
    assert preview.rows[4].status == pb.IMPORT_ROW_STATUS_INVALID and preview.rows[4].reason.startswith("phone: ")
    assert preview.rows[6].status == pb.IMPORT_ROW_STATUS_DUPLICATE
    assert [(c.header, c.field) for c in preview.columns] == [("手机号", "phone"), ("姓名", "name")]
    assert await imports.all_members() == []
    assert list((await imports.stub.ListImportJobs(pb.ListImportJobsRequest(), metadata=SUPER)).jobs) == []
    assert imports.subjects and not (await imports.subjects())
    assert list(imports.runner.spool_dir.iterdir()) == []  # the upload's and the preview's copies are gone


async def test_a_tag_is_created_once_and_never_duplicated_on_a_customer(imports):
    data = csv_file([["phone"], ["13300000001"], ["13300000002"]])
    first = await imports.run(data, tag_name="VIP-2026")
    assert first.tag_name == "VIP-2026" and first.tag_id
    second = await imports.run(data + b"13300000003\r\n", tag_name="vip-2026")  # same tag, any case
    assert second.tag_id == first.tag_id
    fast = await imports.run(data, mode=pb.IMPORT_MODE_FAST, tag_name="VIP-2026")
    assert fast.tag_id == first.tag_id
    async with imports.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Tag)) >= 1
        assert len((await session.scalars(select(Tag).where(Tag.name == "VIP-2026"))).all()) == 1
        pairs = (await session.execute(select(CustomerTag.customer_id, CustomerTag.tag_id))).all()
    assert len(pairs) == 3 and len(set(pairs)) == 3
    for member in await imports.all_members():
        assert list(member.tags) == ["VIP-2026"]
    # Normal mode: one tag-added event per tag actually added (2 then 1).
    assert (await imports.subjects())[subjects.TAG_ADDED] == 3


async def test_normal_mode_makes_events_and_timeline_entries(imports):
    mall = (await imports.org.CreateMall(org_pb.CreateMallRequest(request_id="m", name="静安店"),
                                         metadata=SUPER)).mall.mall_id
    other = (await imports.org.CreateMall(org_pb.CreateMallRequest(request_id="m2", name="Pudong"),
                                          metadata=SUPER)).mall.mall_id
    old = (await imports.members.CreateMember(mpb.CreateMemberRequest(
        request_id="old", phone="13200000009", name="before"), metadata=SUPER)).member
    before = await imports.subjects()
    job = await imports.run(csv_file([
        ["手机号", "姓名", "注册商场", "会员卡号", "开卡时间", "开卡商场"],
        ["13200000001", "新会员", "静安店", "", "", ""],
        ["13200000002", "开卡", mall, "EXT-0001", "2025-06-01 10:00:00", "pudong"],
        ["13200000009", "after", "", "", "", ""],
    ]), tag_name="导入")
    assert (job.created, job.updated) == (2, 1)
    events = await imports.subjects() - before
    assert events[subjects.MEMBER_CREATED] == 2
    assert events[subjects.MEMBER_UPDATED] == 1
    assert events[subjects.MEMBER_CARD_OPENED] == 1
    assert events[subjects.TAG_ADDED] == 3
    assert events[subjects.IMPORT_COMPLETED] == 1
    carded = await imports.by_phone("13200000002")
    assert carded.card.opened and carded.card.card_number == "EXT-0001"
    assert carded.card.open_channel == m.OPEN_CHANNEL_IMPORT
    assert carded.card.open_mall_id == other and carded.registration_mall_id == mall
    assert carded.card.open_time.ToDatetime(tzinfo=UTC) == datetime(2025, 6, 1, 2, tzinfo=UTC)  # Asia/Shanghai
    assert list(carded.interaction_mall_ids) == [other]
    plain = await imports.by_phone("13200000001")
    assert plain.registration_mall_id == mall and not plain.card.opened
    timeline = (await imports.members.ListTimeline(mpb.ListTimelineRequest(customer_id=carded.member_id),
                                                   metadata=SUPER)).entries
    assert sorted(e.kind for e in timeline) == ["card_opened", "created", "tag_added"]
    timeline = (await imports.members.ListTimeline(mpb.ListTimelineRequest(customer_id=old.member_id),
                                                   metadata=SUPER)).entries
    changed = [json.loads(e.detail_json) for e in timeline if e.kind == "attribute_changed"]
    assert [(d["field"], d["from"], d["to"]) for d in changed] == [("name", "before", "after")]


async def test_an_imported_change_is_recorded_and_announced_as_update_member_does_it(imports):
    """One rule (services/customer/member_changes.py): the import's timeline entries are UpdateMember's plus the
    job, and its MemberUpdated is UpdateMember's."""
    by_rpc, by_file = [(await imports.members.CreateMember(mpb.CreateMemberRequest(
        request_id=f"new-{phone}", phone=phone, name="before", real_name="李四"), metadata=SUPER)).member
        for phone in ("13200000001", "13200000002")]
    await imports.members.UpdateMember(mpb.UpdateMemberRequest(
        request_id="edit", member_id=by_rpc.member_id, member=m.Member(name="after", real_name="张三"),
        update_mask=mask("name", "real_name")), metadata=SUPER)
    job = await imports.run(csv_file([["手机号", "姓名", "真实姓名"], ["13200000002", "after", "张三"]]))
    assert (job.created, job.updated) == (0, 1)

    async def changes(member: m.Member) -> list[dict]:
        timeline = (await imports.members.ListTimeline(mpb.ListTimelineRequest(customer_id=member.member_id),
                                                       metadata=SUPER)).entries
        return sorted((json.loads(e.detail_json) for e in timeline if e.kind == "attribute_changed"),
                      key=lambda d: d["field"])

    imported = await changes(by_file)
    assert imported == [{"field": "name", "from": "before", "to": "after", "source": "import",
                         "job_id": job.job_id},
                        {"field": "real_name", "from": "李四", "to": "张三", "source": "import",
                         "job_id": job.job_id}]
    assert [{k: v for k, v in d.items() if k not in ("source", "job_id")} for d in imported] == await changes(by_rpc)
    async with imports.db.read() as session:
        payloads = (await session.scalars(select(OutboxEvent.payload).where(
            OutboxEvent.subject == subjects.MEMBER_UPDATED).order_by(OutboxEvent.seq))).all()
    updates = {e.member_id: e for e in map(subjects.SUBJECT_TYPES[subjects.MEMBER_UPDATED].FromString, payloads)}
    rpc, file = updates[by_rpc.member_id], updates[by_file.member_id]
    assert list(file.changed_fields) == list(rpc.changed_fields) == ["name", "real_name"]
    assert (file.operator_id, file.store_member, file.email) == (rpc.operator_id, rpc.store_member, rpc.email)
    assert file.phone == "13200000002" and rpc.phone == "13200000001"


async def test_fast_mode_makes_one_completion_event_and_no_row_events(imports):
    await imports.settings.UpdateTenantSettings(set_pb.UpdateTenantSettingsRequest(
        request_id="review", settings=set_pb.TenantSettings(review_required=True), update_mask=mask("review_required")),
        metadata=SUPER)
    await imports.members.CreateMember(mpb.CreateMemberRequest(request_id="x", phone="13100000000"), metadata=SUPER)
    before = await imports.subjects()
    rows = [["phone", "name", "card_number"]] + [[f"1310000{i:04d}", f"n{i}", "C1" if i == 3 else ""]
                                                 for i in range(50)]
    job = await imports.run(csv_file(rows), mode=pb.IMPORT_MODE_FAST, tag_name="fast")
    assert (job.created, job.updated, job.mode) == (49, 1, pb.IMPORT_MODE_FAST)
    # One batch: one announcement of the members it created (for the ledger) and one of the member it changed
    # (for the crowd index), no per-member events.
    assert await imports.subjects() - before == Counter({subjects.IMPORT_COMPLETED: 1, subjects.MEMBERS_IMPORTED: 2})
    new = await imports.by_phone("13100000001")
    assert new.review_status == m.REVIEW_STATUS_PENDING and list(new.tags) == ["fast"]
    carded = await imports.by_phone("13100000003")
    assert carded.card.opened and carded.card.card_number == "C1"
    assert carded.card.open_channel == m.OPEN_CHANNEL_IMPORT
    timeline = (await imports.members.ListTimeline(mpb.ListTimelineRequest(customer_id=new.member_id),
                                                   metadata=SUPER)).entries
    assert list(timeline) == []


async def test_a_fast_import_reaches_the_crowd_index_batch_by_batch_without_a_rebuild(imports):
    index, built_at = imports.crowd, imports.crowd.built_at
    kept = (await imports.members.CreateMember(mpb.CreateMemberRequest(
        request_id="kept", phone="13400000000", name="kept", gender=m.GENDER_MALE), metadata=SUPER)).member
    imports.runner.fast_batch = 10

    async def announced() -> list[tuple[list[int], list[int]]]:
        async with imports.db.read() as session:
            rows = (await session.scalars(select(OutboxEvent).where(
                OutboxEvent.subject == subjects.MEMBERS_IMPORTED).order_by(OutboxEvent.seq))).all()
        decoded = [subjects.decode(e.subject, e.payload) for e in rows]
        return [([int(i) for i in d.member_ids], [int(i) for i in d.updated_member_ids]) for d in decoded]

    async def caught_up() -> bool:
        return contents(index) == contents(await fresh(imports.db))

    # 24 new members and the existing one (female now), all tagged, in three batches.
    rows = [["手机号", "姓名", "性别"], ["13400000000", "kept", "女"]] + [
        [f"1340000{i:04d}", f"n{i}", "男"] for i in range(1, 25)]
    job = await imports.run(csv_file(rows), mode=pb.IMPORT_MODE_FAST, tag_name="wave")
    assert (job.created, job.updated) == (24, 1)
    assert await wait_until(caught_up), "the index did not follow the import"
    tagged = [int(x.member_id) for x in await imports.all_members()]
    async with imports.db.read() as session:
        tag_id = await session.scalar(select(Tag.id).where(Tag.name == "wave"))
    assert contents(index)["bitmaps"][f"tag:{tag_id}"] == sorted(tagged)
    events = await announced()
    assert sorted(i for new, _ in events for i in new) == sorted(set(tagged) - {int(kept.member_id)})
    assert [changed for _, changed in events if changed] == [[int(kept.member_id)]]

    # The same file again changes nothing and names nobody; a third run changes two members' gender.
    job = await imports.run(csv_file(rows), "again.csv", mode=pb.IMPORT_MODE_FAST, tag_name="wave")
    assert (job.created, job.updated, job.unchanged) == (0, 0, 25)
    assert len(await announced()) == len(events)
    flipped = [rows[0], ["13400000001", "n1", "女"], ["13400000002", "n2", "女"]]
    job = await imports.run(csv_file(flipped), "flip.csv", mode=pb.IMPORT_MODE_FAST)
    assert job.updated == 2
    two = sorted([int((await imports.by_phone("13400000001")).member_id),
                  int((await imports.by_phone("13400000002")).member_id)])
    assert (await announced())[len(events):] == [([], two)]
    assert await wait_until(caught_up), "the index did not follow the changed members"
    assert index.built_at == built_at  # refreshed in place, never rebuilt


async def test_ledger_opens_accounts_for_fast_imported_members_once(imports, backend, databases, js, nats_url,
                                                                    tmp_path):
    rows = [["phone", "name"]] + [[f"1320000{i:04d}", f"n{i}"] for i in range(25)]
    imports.runner.fast_batch = 10  # three batches, three customer.members.imported events
    with databases.fresh(backend, tmp_path, "ledger", service="ledger") as ledger_url:
        settings = LedgerSettings(grpc_port=0, metrics_port=0, database_url=ledger_url, outbox_poll_s=0.05)
        async with running_service(ledger_spec, settings, nats_url=nats_url, state_dir=tmp_path / "ledger") as (
                ledger, channel):
            job = await imports.run(csv_file(rows), mode=pb.IMPORT_MODE_FAST)
            assert job.created == 25
            ids = sorted(int(x.member_id) for x in await imports.all_members())
            stub = ledger_grpc.LedgerServiceStub(channel)
            for _ in range(200):
                try:
                    await stub.GetBalances(ledger_pb.GetBalancesRequest(member_id=str(ids[-1])))
                    break
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.NOT_FOUND
                    await asyncio.sleep(0.05)
            for member_id in ids:
                reply = await stub.GetBalances(ledger_pb.GetBalancesRequest(member_id=str(member_id)))
                assert sorted(a.asset for a in reply.accounts) == [
                    ledger_pb.ASSET_POINTS, ledger_pb.ASSET_BALANCE, ledger_pb.ASSET_RED_PACKET]

            async def counts() -> tuple[int, int, int, int]:
                async with ledger.ctx.db.read() as session:
                    return (await session.scalar(select(func.count()).select_from(Account)),
                            await session.scalar(select(func.count()).select_from(MemberState)),
                            sum(len(subjects.decode(r.subject, r.payload).accounts) for r in await session.scalars(
                                select(LedgerOutbox).where(LedgerOutbox.subject == subjects.ACCOUNTS_OPENED))),
                            # The accounts' consumer (others, like the scope's ledger-member-malls, read them too).
                            await session.scalar(select(func.count()).select_from(Processed).where(
                                Processed.consumer == "ledger-customer-events")))

            assert (await counts())[:3] == (75, 25, 75)
            async with imports.db.read() as session:
                announced = (await session.scalars(select(OutboxEvent).where(
                    OutboxEvent.subject == subjects.MEMBERS_IMPORTED).order_by(OutboxEvent.seq))).all()
            assert sorted(int(x) for e in announced for x in subjects.decode(e.subject, e.payload).member_ids) == ids
            applied = (await counts())[3]
            # Redelivered: once with the ids already seen, once as new messages (a republish past the window).
            for e in announced:
                await js.publish(e.subject, e.payload, headers={"Nats-Msg-Id": e.msg_id})
                await js.publish(e.subject, e.payload, headers={"Nats-Msg-Id": f"again-{e.msg_id}"})
            await caught_up(js, "CUSTOMER", "ledger-customer-events")
            assert await counts() == (75, 25, 75, applied + len(announced))


async def test_job_progress_moves_batch_by_batch_to_the_total(imports):
    imports.runner.normal_batch = 4
    rows = [["phone"]] + [[f"1330000{i:04d}"] for i in range(30)]
    uploaded = await imports.upload(csv_file(rows))
    job = await imports.start(uploaded.file_id)
    seen = [job.processed_rows]
    while job.state not in DONE:
        job = (await imports.stub.GetImportJob(pb.GetImportJobRequest(job_id=job.job_id), metadata=SUPER)).job
        seen.append(job.processed_rows)
        await asyncio.sleep(0.005)
    assert seen == sorted(seen) and seen[-1] == job.total_rows == 30
    assert all(p % 4 == 0 or p == 30 for p in seen)
    assert job.created == 30 and job.complete_time.ToSeconds() >= job.start_time.ToSeconds() > 0
    listed = (await imports.stub.ListImportJobs(pb.ListImportJobsRequest(), metadata=SUPER)).jobs
    assert [j.job_id for j in listed] == [job.job_id]


class Killed(Exception):
    pass


@pytest.mark.parametrize("mode", [pb.IMPORT_MODE_NORMAL, pb.IMPORT_MODE_FAST])
async def test_a_job_killed_mid_batch_leaves_whole_batches_and_resumes(imports, monkeypatch, mode):
    imports.runner.normal_batch = imports.runner.fast_batch = 5
    original = writer.BatchWriter.apply
    calls = {"n": 0}

    async def dies_in_the_third_batch(self, *args):
        calls["n"] += 1
        await original(self, *args)
        if calls["n"] == 3:
            raise Killed("the process died before the commit")

    async def no_cleanup(self, job_id, reason):
        return None

    monkeypatch.setattr(writer.BatchWriter, "apply", dies_in_the_third_batch)
    monkeypatch.setattr(ImportRunner, "_fail", no_cleanup)
    rows = [["phone", "email"]] + [[f"1320000{i:04d}", ""] for i in range(23)]
    rows[12] = ["bad", ""]
    rows[14] = [rows[2][0], ""]  # duplicate of an earlier batch's row
    uploaded = await imports.upload(csv_file(rows))
    job = await imports.start(uploaded.file_id, mode, tag_name="t")
    await imports.runner.wait(int(job.job_id))
    stuck = (await imports.stub.GetImportJob(pb.GetImportJobRequest(job_id=job.job_id), metadata=SUPER)).job
    assert (stuck.state, stuck.processed_rows, stuck.created) == (pb.IMPORT_JOB_STATE_RUNNING, 10, 10)
    assert len(await imports.all_members()) == 10
    # A killed process leaves its copies of files behind: this job's, half of another's, an upload's.
    spool = imports.runner.spool_dir
    for name in (f"job-{job.job_id}.csv", "job-9999.csv.part", "upload-0f.csv"):
        (spool / name).write_bytes(b"left by the killed process")
        os.utime(spool / name, (time.time() - 600, time.time() - 600))
    # A restarted service resumes it from its last committed batch.
    monkeypatch.setattr(writer.BatchWriter, "apply", original)
    restarted = ImportRunner(imports.db, spool, fast_batch=5, normal_batch=5)
    await restarted.resume()
    await restarted.wait(int(job.job_id))
    done = await imports.finished(job.job_id)
    assert list(spool.iterdir()) == []  # the job read its file afresh and left nothing
    assert (done.state, done.processed_rows, done.created, done.invalid, done.duplicate) == (
        pb.IMPORT_JOB_STATE_SUCCEEDED, 23, 21, 1, 1)
    members = await imports.all_members()
    assert len(members) == 21 == len({x.phone for x in members})
    assert [(i.row_number, i.status) for i in await imports.issues(job.job_id)] == [
        (13, pb.IMPORT_ROW_STATUS_INVALID), (15, pb.IMPORT_ROW_STATUS_DUPLICATE)]
    events = await imports.subjects()
    assert events[subjects.IMPORT_COMPLETED] == 1
    assert events[subjects.MEMBER_CREATED] == (21 if mode == pb.IMPORT_MODE_NORMAL else 0)
    assert events[subjects.TAG_ADDED] == (21 if mode == pb.IMPORT_MODE_NORMAL else 0)
    async with imports.db.read() as session:
        imported = [subjects.decode(subject, payload) for subject, payload in (await session.execute(
            select(OutboxEvent.subject, OutboxEvent.payload).where(
                OutboxEvent.subject == subjects.MEMBERS_IMPORTED))).all()]
        stats = await session.scalar(select(func.count()).select_from(CustomerStats))
    # Fast mode announces each committed batch's new members once (the batch that died announced nothing).
    announced = [x for e in imported for x in e.member_ids]
    assert sorted(announced) == (sorted(x.member_id for x in members) if mode == pb.IMPORT_MODE_FAST else [])
    assert stats == 21  # every member has its stats row


@pytest.mark.parametrize("name,data,field", [
    ("user.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "file"),
    ("user.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "file"),
    ("user.xlsx", b"phone\r\n13800000000\r\n", "file"),
    ("user.pdf", b"phone\r\n13800000000\r\n", "file_name"),
    ("user.csv", "手机号\r\n13800000000\r\n".encode("gb18030") + b"\xff\xff\xff", "file"),
    ("user.xlsx", b"PK\x03\x04 not really a zip", "file"),
])
async def test_malformed_files_are_refused_and_nothing_is_written(imports, name, data, field):
    err = await rpc_error(imports.upload(data, name))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(f"{field}: ")
    assert await imports.all_members() == []
    async with imports.db.read() as session:
        from services.customer.imports.models import ImportFile

        assert await session.scalar(select(func.count()).select_from(ImportFile)) == 0


async def test_a_file_without_a_key_column_starts_no_job(imports):
    uploaded = await imports.upload(csv_file([["name", "gender"], ["a", "male"]]))
    # The preview shows the rows with a warning (the operator may be comparing encodings) ...
    preview = await imports.stub.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id), metadata=SUPER)
    assert preview.warning.startswith("no phone or email column") and preview.counts.invalid == 1
    # ... starting is refused.
    err = await rpc_error(imports.stub.StartImport(pb.StartImportRequest(
        request_id="nokey", file_id=uploaded.file_id, mode=pb.IMPORT_MODE_FAST), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no phone or email column" in err.details()
    assert list((await imports.stub.ListImportJobs(pb.ListImportJobsRequest(), metadata=SUPER)).jobs) == []


@pytest.mark.slow
async def test_a_file_over_100_mb_is_refused(imports):
    block = b"13800000000\r\n" * (1024 * 1024 // 13)

    def messages():
        yield pb.UploadImportFileRequest(request_id="huge", file_name="huge.csv", chunk=b"phone\r\n")
        for _ in range(101):
            yield pb.UploadImportFileRequest(chunk=block)

    err = await rpc_error(imports.stub.UploadImportFile(messages(), metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details() == "file: is larger than 100 MB"


async def test_bad_requests_name_the_field(imports):
    uploaded = await imports.upload(csv_file([["phone"], ["13800000000"]]))
    cases = [
        (pb.StartImportRequest(request_id="r1", file_id=uploaded.file_id), "mode"),
        (pb.StartImportRequest(request_id="r2", file_id=uploaded.file_id, mode=7), "mode"),
        (pb.StartImportRequest(request_id="r3", file_id="abc", mode=1), "file_id"),
        (pb.StartImportRequest(file_id=uploaded.file_id, mode=1), "request_id"),
        (pb.StartImportRequest(request_id="r4", file_id=uploaded.file_id, mode=1, time_zone="Mars/Olympus"),
         "time_zone"),
        (pb.StartImportRequest(request_id="r5", file_id=uploaded.file_id, mode=1, tag_name="t" * 51), "tag_name"),
        (pb.StartImportRequest(request_id="r6", file_id=uploaded.file_id, mode=1, encoding=9), "encoding"),
    ]
    for request, field in cases:
        err = await rpc_error(imports.stub.StartImport(request, metadata=SUPER))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(f"{field}: "), request
    err = await rpc_error(imports.stub.StartImport(pb.StartImportRequest(request_id="r7", file_id="999", mode=1),
                                                   metadata=SUPER))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(imports.stub.ListImportIssues(pb.ListImportIssuesRequest(job_id="1", page_size=-1),
                                                        metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("page_size: ")
    assert list((await imports.stub.ListImportJobs(pb.ListImportJobsRequest(), metadata=SUPER)).jobs) == []
    # The same request_id with a different file is refused; the same file answers as before.
    again = await imports.upload(csv_file([["phone"], ["13800000000"]]), request_id="same")
    assert (await imports.upload(csv_file([["phone"], ["13800000000"]]), request_id="same")).file_id == again.file_id
    err = await rpc_error(imports.upload(csv_file([["phone"], ["13800000001"]]), request_id="same"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_only_super_admins_import(imports):
    err = await rpc_error(imports.upload(csv_file([["phone"], ["13800000000"]]), metadata=mall_admin("1")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    uploaded = await imports.upload(csv_file([["phone"], ["13800000000"]]))
    err = await rpc_error(imports.stub.StartImport(pb.StartImportRequest(
        request_id="s", file_id=uploaded.file_id, mode=1), metadata=mall_admin("1")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_repeated_start_is_one_job(imports):
    uploaded = await imports.upload(csv_file([["phone"], ["13800000000"]]))
    request = pb.StartImportRequest(request_id="once", file_id=uploaded.file_id, mode=pb.IMPORT_MODE_FAST)
    first = (await imports.stub.StartImport(request, metadata=SUPER)).job
    second = (await imports.stub.StartImport(request, metadata=SUPER)).job
    assert first.job_id == second.job_id
    assert (await imports.finished(first.job_id)).created == 1


async def test_the_cli_imports_a_file_with_a_progress_bar(imports, tmp_path, capsys):
    from services.cli import main

    path = tmp_path / "user_2026-02-01.csv"
    path.write_bytes(csv_file([["手机号", "姓名"], ["13800000011", "张三"], ["bad", "x"]], "gb18030"))
    code = await asyncio.to_thread(main, ["import", str(path), "--mode", "fast", "--tag", "cli",
                                          "--customer", imports.address])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "100%" in err and "created 1" in out and "row 3" in out
    assert [x.phone for x in await imports.all_members()] == ["13800000011"]
    code = await asyncio.to_thread(main, ["import", str(tmp_path / "missing.csv"), "--customer", imports.address])
    out, err = capsys.readouterr()
    assert code != 0 and err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1
    path.write_bytes(b"name\r\nx\r\n")
    code = await asyncio.to_thread(main, ["import", str(path), "--customer", imports.address])
    out, err = capsys.readouterr()
    assert code != 0 and err.strip().splitlines()[-1].startswith("error: ") and "phone or email" in err


@pytest.mark.parametrize("mode", [pb.IMPORT_MODE_NORMAL, pb.IMPORT_MODE_FAST])
async def test_an_opening_mall_without_a_card_number_is_a_row_issue(imports, mode):
    mall = (await imports.org.CreateMall(org_pb.CreateMallRequest(request_id="m", name="静安店"),
                                         metadata=SUPER)).mall.mall_id
    data = csv_file([
        ["手机号", "姓名", "会员卡号", "开卡商场"],
        ["13300000001", "有卡", "EXT-1", "静安店"],
        ["13300000002", "无卡", "", "静安店"],
        ["13300000003", "无商场", "", ""],
    ])
    uploaded = await imports.upload(data, request_id=f"mall-no-card-{mode}")
    preview = await imports.stub.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id), metadata=SUPER)
    assert (preview.counts.to_import, preview.counts.invalid) == (2, 1)
    assert preview.rows[1].status == pb.IMPORT_ROW_STATUS_INVALID and "开卡商场" in preview.rows[1].reason
    job = await imports.finished((await imports.start(uploaded.file_id, mode=mode)).job_id)
    assert (job.created, job.invalid) == (2, 1)
    issues = await imports.issues(job.job_id)
    assert [(i.row_number, i.field) for i in issues] == [(3, "card_open_mall_id")]
    assert "会员卡号" in issues[0].reason
    carded = await imports.by_phone("13300000001")
    assert carded.card.opened and carded.card.open_mall_id == mall
    assert [x.phone for x in await imports.all_members()] == ["13300000001", "13300000003"]
