"""The member download: CSV with a BOM, the ListMembers filter, the row cap, super admins only."""

from __future__ import annotations

import csv
import io
from datetime import UTC
from zoneinfo import ZoneInfo

import grpc
import pytest

from crowdpack.customer.v1 import import_service_pb2 as pb
from crowdpack.customer.v1 import import_service_pb2_grpc as pb_grpc
from crowdpack.customer.v1 import member_pb2 as m
from crowdpack.customer.v1 import member_service_pb2 as mpb
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from tests.support.customer import SUPER, mall_admin, rpc_error

pytestmark = pytest.mark.database("customer")


def parse(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the UTF-8 byte order mark"
    return list(csv.DictReader(io.StringIO(data[3:].decode("utf-8"))))


async def seed(customer, n: int) -> None:
    for i in range(n):
        await customer.members.CreateMember(mpb.CreateMemberRequest(
            request_id=f"m{i}", phone=f"1390000{i:04d}", name=f"会员{i}", email=f"m{i}@example.com" if i % 2 else ""),
            metadata=SUPER)


async def test_export_is_csv_with_a_bom_capped_by_the_setting(customer):
    stub = pb_grpc.ImportServiceStub(customer.channel)
    await seed(customer, 7)
    reply = await stub.ExportMembers(pb.ExportMembersRequest(), metadata=SUPER)
    rows = parse(reply.csv)
    # The fixture caps downloads at 5 rows (CustomerSettings.export_max_rows, 10,000 by default).
    assert (reply.row_count, reply.truncated, len(rows)) == (5, True, 5)
    assert [r["手机号"] for r in rows] == [f"1390000{i:04d}" for i in (6, 5, 4, 3, 2)]  # newest first
    assert rows[0]["姓名"] == "会员6" and rows[1]["邮箱"] == "m5@example.com" and rows[0]["性别"] == "未知"
    smaller = await stub.ExportMembers(pb.ExportMembersRequest(max_rows=2, ascending=True), metadata=SUPER)
    assert [r["手机号"] for r in parse(smaller.csv)] == ["13900000000", "13900000001"] and smaller.truncated
    bigger = await stub.ExportMembers(pb.ExportMembersRequest(max_rows=1000), metadata=SUPER)
    assert bigger.row_count == 5


async def test_export_takes_the_member_list_filter(customer):
    stub = pb_grpc.ImportServiceStub(customer.channel)
    await seed(customer, 4)
    reply = await stub.ExportMembers(pb.ExportMembersRequest(filter=mpb.MemberFilter(search="13900000002")),
                                     metadata=SUPER)
    assert [r["手机号"] for r in parse(reply.csv)] == ["13900000002"] and not reply.truncated
    empty = await stub.ExportMembers(pb.ExportMembersRequest(filter=mpb.MemberFilter(levels=[3])), metadata=SUPER)
    assert parse(empty.csv) == [] and empty.row_count == 0
    header = empty.csv[3:].decode().splitlines()[0].split(",")
    assert header[:4] == ["会员编号", "手机号", "邮箱", "姓名"]


async def test_an_export_can_be_imported_again(customer):
    """The download's column names are import headers: editing and re-importing it updates the members."""
    stub = pb_grpc.ImportServiceStub(customer.channel)
    await seed(customer, 3)
    data = (await stub.ExportMembers(pb.ExportMembersRequest(), metadata=SUPER)).csv
    uploaded = (await stub.UploadImportFile(iter([pb.UploadImportFileRequest(
        request_id="again", file_name="members.csv", chunk=data)]), metadata=SUPER)).file
    fields = {c.header: c.field for c in uploaded.columns}
    assert fields["手机号"] == "phone" and fields["注册时间"] == "registered_at" and fields["性别"] == "gender"
    assert fields["标签"] == "" and fields["已禁用"] == ""
    preview = await stub.PreviewImport(pb.PreviewImportRequest(file_id=uploaded.file_id), metadata=SUPER)
    assert (preview.counts.scanned, preview.counts.to_import) == (3, 3)


async def test_values_are_chinese_and_times_in_the_members_mall_time_zone(customer):
    stub = pb_grpc.ImportServiceStub(customer.channel)
    tokyo = (await customer.org.CreateMall(org_pb.CreateMallRequest(request_id="tokyo", name="东京店",
                                                                     timezone="Asia/Tokyo"), metadata=SUPER)).mall
    shanghai = await customer.mall("上海店")
    made = {}
    for key, mall, gender in (("t", tokyo.mall_id, m.GENDER_MALE), ("s", shanghai, m.GENDER_FEMALE)):
        made[key] = (await customer.members.CreateMember(mpb.CreateMemberRequest(
            request_id=key, phone=f"1370000000{len(made)}", gender=gender, registration_mall_id=mall),
            metadata=SUPER)).member
    await customer.members.SetMemberDisabled(mpb.SetMemberDisabledRequest(
        request_id="off", member_id=made["t"].member_id, disabled=True, reason="测试"), metadata=SUPER)
    rows = {r["会员编号"]: r for r in parse((await stub.ExportMembers(pb.ExportMembersRequest(),
                                                                    metadata=SUPER)).csv)}
    t, s = rows[made["t"].member_id], rows[made["s"].member_id]
    assert (t["性别"], s["性别"]) == ("男", "女") and (t["已禁用"], s["已禁用"]) == ("是", "否")
    assert (t["门店成员"], t["审核状态"]) == ("否", "已通过")
    for row, member, zone in ((t, made["t"], "Asia/Tokyo"), (s, made["s"], "Asia/Shanghai")):
        local = member.registration_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo(zone))
        assert row["注册时间"] == local.strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("request_, field", [
    (pb.ExportMembersRequest(max_rows=-1), "max_rows"),
    (pb.ExportMembersRequest(filter=mpb.MemberFilter(levels=[11])), "filter.levels"),
    (pb.ExportMembersRequest(filter=mpb.MemberFilter(tag_ids=["x"])), "filter.tag_ids"),
    (pb.ExportMembersRequest(order_by=99), "order_by"),
])
async def test_bad_export_requests_name_the_field(customer, request_, field):
    stub = pb_grpc.ImportServiceStub(customer.channel)
    err = await rpc_error(stub.ExportMembers(request_, metadata=SUPER))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(f"{field}: ")


async def test_only_super_admins_download_member_data(customer):
    stub = pb_grpc.ImportServiceStub(customer.channel)
    await seed(customer, 1)
    err = await rpc_error(stub.ExportMembers(pb.ExportMembersRequest(), metadata=mall_admin("1")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
