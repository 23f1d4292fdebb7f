"""Import reading: format sniffing, encoding detection, CSV/XLSX rows, the header mapping and row checks."""

from __future__ import annotations

import codecs
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from crowdpack.customer.v1 import import_service_pb2 as pb
from services.common.errors import InvalidArgument
from services.customer.imports import reading
from services.customer.imports.columns import map_header, normalize_header
from services.customer.imports.rows import DUPLICATE, EMPTY, INVALID, OK, Reference, RowValidator

TEXT = "手机号,姓名,地址\r\n13800000000,张伟,上海市静安区南京西路一号\r\n13800000001,李娜,北京市朝阳区建国路\r\n"
TRADITIONAL = "手機號,姓名,地址\r\n13800000000,張偉,臺北市信義區市府路一號\r\n13800000001,李娜,香港灣仔港灣道\r\n"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data,expected", [
    (TEXT.encode("utf-8"), pb.IMPORT_ENCODING_UTF8),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), pb.IMPORT_ENCODING_UTF8),
    (TEXT.encode("gb18030"), pb.IMPORT_ENCODING_GB18030),
    (TEXT.encode("gbk"), pb.IMPORT_ENCODING_GB18030),
    (TRADITIONAL.encode("big5"), pb.IMPORT_ENCODING_BIG5),
    (TRADITIONAL.encode("gb18030"), pb.IMPORT_ENCODING_GB18030),
    (b"phone,name\r\n13800000000,Ann\r\n", pb.IMPORT_ENCODING_UTF8),
])
def test_encoding_is_detected(tmp_path, data, expected):
    info = reading.inspect(write(tmp_path, "u.csv", data), "u.csv")
    assert (info.format, info.encoding, info.row_count) == (pb.IMPORT_FORMAT_CSV, expected, info.row_count)
    assert normalize_header(info.header[0]) in ("手机号", "手機號", "phone")


def test_the_bom_is_not_part_of_the_first_header(tmp_path):
    info = reading.inspect(write(tmp_path, "u.csv", codecs.BOM_UTF8 + TEXT.encode()), "u.csv")
    assert info.header[0] == "手机号" and info.row_count == 2


def test_an_undecodable_file_names_the_line(tmp_path):
    data = TEXT.encode("utf-8") + "13800000002,王芳\r\n".encode("gb18030")
    path = write(tmp_path, "u.csv", data)
    with pytest.raises(InvalidArgument) as caught:
        reading.check_decodes(path, pb.IMPORT_ENCODING_UTF8)
    assert caught.value.field == "encoding" and "line 4" in caught.value.message
    with pytest.raises(InvalidArgument) as caught:  # mixed encodings: no candidate reads the whole file
        reading.detect_encoding(path)
    assert caught.value.field == "file"


@pytest.mark.parametrize("name,data,field", [
    ("u.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "file"),
    ("u.csv", b"", "file"),
    ("u.csv", b"a\x00b", "file"),
    ("u.doc", b"phone\n", "file_name"),
    ("u.xlsx", b"phone\n", "file"),
])
def test_formats_that_are_not_csv_or_xlsx_are_refused(tmp_path, name, data, field):
    with pytest.raises(InvalidArgument) as caught:
        reading.inspect(write(tmp_path, name, data), name)
    assert caught.value.field == field


def test_xlsx_cells_read_as_typed(tmp_path):
    book = Workbook()
    book.active.append(["手机号", "生日", "开卡时间", "等级"])
    book.active.append([13800000000, datetime(1990, 1, 2), datetime(2024, 5, 6, 7, 8, 9), 2.0])
    path = tmp_path / "u.xlsx"
    book.save(path)
    info = reading.inspect(path, "u.xlsx")
    assert (info.format, info.encoding, info.row_count) == (pb.IMPORT_FORMAT_XLSX, 0, 1)
    rows = list(reading.open_rows(path, info.format, 0))
    assert rows[1] == ["13800000000", "1990-01-02", "2024-05-06 07:08:09", "2"]


def test_semicolon_and_tab_separated_files(tmp_path):
    for sep in (";", "\t"):
        path = write(tmp_path, "u.csv", f"phone{sep}name\r\n13800000000{sep}a\r\n".encode())
        assert list(reading.csv_rows(path, pb.IMPORT_ENCODING_UTF8))[1] == ["13800000000", "a"]


def test_headers_map_in_chinese_and_english_in_any_case():
    mapping = map_header(["\ufeff手机号", "E-MAIL", "Real Name", "OpenID", "UNIONID", "开卡商场", "会员卡号", "备注"])
    assert mapping.fields == ["phone", "email", "real_name", "wechat_openid", "wechat_unionid", "card_open_mall_id",
                              "card_number", ""]
    assert map_header(["mobile", "邮箱"]).has_key and not map_header(["name"]).has_key
    with pytest.raises(InvalidArgument) as caught:
        map_header(["phone", "手机"])
    assert caught.value.field == "file" and "both mean phone" in caught.value.message


def validator(*headers: str, reference: Reference | None = None) -> RowValidator:
    return RowValidator(map_header(list(headers)), reference or Reference(), ZoneInfo("Asia/Shanghai"))


def test_rows_are_checked_and_duplicates_found():
    v = validator("phone", "email", "gender", "birthday", "openid")
    ok = v.check(2, ["13800000000", " Ann@Example.COM ", "女", "1990/1/2", " OpenId-Case "])
    assert ok.status == OK and ok.values == {"phone": "13800000000", "email": "ann@example.com", "gender": 2,
                                             "birthday": date(1990, 1, 2), "wechat_openid": "OpenId-Case"}
    assert v.check(3, ["", "", "", "", ""]).status == EMPTY
    assert v.check(4, ["  ", "", "", "", ""]).status == EMPTY
    bad = v.check(5, ["1380000000", "", "", "", ""])
    assert (bad.status, bad.field) == (INVALID, "phone")
    assert v.check(6, ["", "", "male", "", ""]).reason == "no phone or email (one is required)"
    dup = v.check(7, ["", "ANN@example.com", "", "", ""])
    assert (dup.status, dup.field, dup.reason) == (DUPLICATE, "email", "same email as row 2")
    assert v.check(8, ["13800000000", "", "", "", ""]).reason == "same phone as row 2"
    assert v.check(9, ["+86 138-0000-0009", "", "", "", ""]).values == {"phone": "13800000009"}
    assert v.check(10, ["13800000010", "", "x", "", ""]).field == "gender"
    assert v.check(11, ["13800000011", "", "", "2999-01-01", ""]).field == "birthday"
    assert v.check(12, ["13800000012"]).status == OK  # a short row: the missing cells are empty


def test_times_malls_and_levels():
    ref = Reference(mall_ids={7}, mall_names={"静安店": 7}, levels={1: 12}, level_names={"银卡": 1})
    v = validator("phone", "注册商场", "开卡时间", "等级", reference=ref)
    row = v.check(2, ["13800000000", "静安店", "2024-05-06 08:00", "银卡"])
    assert row.values["registration_mall_id"] == 7 and row.values["level"] == 1
    assert row.values["card_open_time"] == datetime(2024, 5, 6, 0, 0, tzinfo=UTC)
    assert v.check(3, ["13800000001", "7", "2024-05-06T08:00:00+00:00", "1"]).values["card_open_time"] == \
        datetime(2024, 5, 6, 8, tzinfo=UTC)
    assert v.check(4, ["13800000002", "8", "", ""]).field == "registration_mall_id"
    assert v.check(5, ["13800000003", "", "tomorrow", ""]).field == "card_open_time"
    assert v.check(6, ["13800000004", "", "", "3"]).reason == "level: no level 3"
    assert v.check(7, ["13800000005", "", "", "11"]).field == "level"
