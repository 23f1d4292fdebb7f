"""One file row of a business customer import (document 003, Q2) to the archive values it sets, or why it is skipped.

The columns are the archive's, by the Chinese names of the document's field table or by English ones
(``BUSINESS_ALIASES``; headers match as the member import's do, ``columns.normalize_header``). A row is
keyed on its customer code (客户编号: an existing customer) or, without a code, on its full name
(客户名称). Values are checked by the rules CreateBusinessCustomer applies (``business.fields``), so a
row is refused exactly where the RPC would refuse it, naming the same field. Money is written in yuan
(up to two decimals, thousands separators allowed) and stored in fen; type and status take the
document's words (企业/个人; 潜在/意向/成交/流失, with or without 客户) or the English names. The owner
(负责销售) is a staff member's id, mobile or name; without one, the importing operator owns new customers.

A row is skipped when it is empty, has neither code nor name, holds a malformed value (the reason names
the field), or repeats an earlier row's code, name (rows without a code), phone or email (a duplicate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from crowdpack.customer.v1 import business_customer_service_pb2 as bpb
from services.common.errors import InvalidArgument
from services.common.validation import MAX_MONEY, enum_of
from services.customer.business import fields as archive
from services.customer.imports.columns import HeaderMapping, lookup_of
from services.customer.imports.rows import DATE_PARTS, DUPLICATE, EMPTY, INVALID, OK, RowResult

BUSINESS_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("客户编号", "编号", "客戶編號", "customer code", "code", "customer no"),
    "name": ("客户名称", "名称", "公司名称", "企业名称", "客戶名稱", "公司名稱", "customer name", "name",
             "company name", "company"),
    "short_name": ("客户简称", "简称", "客戶簡稱", "簡稱", "short name"),
    "type": ("客户类型", "类型", "客戶類型", "customer type", "type"),
    "industry": ("所属行业", "行业", "所屬行業", "行業", "industry"),
    "scale": ("企业规模", "规模", "企業規模", "規模", "scale", "company size", "size"),
    "address": ("详细地址", "地址", "詳細地址", "address"),
    "website": ("公司网址", "网址", "官网", "公司網址", "網址", "website", "url", "web site"),
    "founded_date": ("成立日期", "founded", "founded date", "founding date"),
    "credit_limit_fen": ("信用额度", "信用额度(元)", "信用额度（元）", "信用額度", "credit limit", "credit limit yuan"),
    "payment_terms": ("付款条件", "付款條件", "payment terms"),
    "payment_days": ("账期", "账期(天)", "账期（天）", "賬期", "payment days", "credit days"),
    "source": ("客户来源", "来源", "客戶來源", "來源", "source", "customer source"),
    "owner_staff_id": ("负责销售", "负责人", "負責銷售", "負責人", "owner", "sales", "salesperson",
                       "owner staff id"),
    "status": ("客户状态", "状态", "客戶狀態", "狀態", "status", "customer status"),
    "annual_revenue_fen": ("年成交额", "年成交额(元)", "年成交额（元）", "年成交額", "annual revenue", "revenue"),
    "cooperation_years": ("合作年限", "cooperation years", "years"),
    "phone": ("手机号", "手机", "手机号码", "电话", "联系电话", "手機號", "手機", "電話", "phone", "mobile", "tel"),
    "email": ("邮箱", "电子邮箱", "郵箱", "電子郵箱", "email", "e-mail", "mail"),
}
BUSINESS_LOOKUP = lookup_of(BUSINESS_ALIASES)
BUSINESS_KEYS = ("code", "name")

CODE = re.compile(r"^CUS\d{12}$")
TYPES: dict[str, int] = {"企业": bpb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE, "企業": bpb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE,
         "enterprise": bpb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE, "company": bpb.BUSINESS_CUSTOMER_TYPE_ENTERPRISE,
         "个人": bpb.BUSINESS_CUSTOMER_TYPE_INDIVIDUAL, "個人": bpb.BUSINESS_CUSTOMER_TYPE_INDIVIDUAL,
         "individual": bpb.BUSINESS_CUSTOMER_TYPE_INDIVIDUAL, "person": bpb.BUSINESS_CUSTOMER_TYPE_INDIVIDUAL}
STATUSES: dict[str, int] = {
            "潜在": bpb.BUSINESS_CUSTOMER_STATUS_POTENTIAL, "潛在": bpb.BUSINESS_CUSTOMER_STATUS_POTENTIAL,
            "potential": bpb.BUSINESS_CUSTOMER_STATUS_POTENTIAL,
            "意向": bpb.BUSINESS_CUSTOMER_STATUS_INTENT, "intent": bpb.BUSINESS_CUSTOMER_STATUS_INTENT,
            "成交": bpb.BUSINESS_CUSTOMER_STATUS_DEAL, "deal": bpb.BUSINESS_CUSTOMER_STATUS_DEAL,
            "流失": bpb.BUSINESS_CUSTOMER_STATUS_LOST, "lost": bpb.BUSINESS_CUSTOMER_STATUS_LOST}
MONEY = re.compile(r"^\d+(\.\d{1,2})?$")
# The file fields archive_values checks, by the request field that carries them.
ARCHIVE_PATHS = frozenset(BUSINESS_ALIASES) - {"code", "owner_staff_id"}
INT_FIELDS = {"payment_days", "cooperation_years"}


@dataclass
class StaffReference:
    """Who may own business customers: enabled super admins, mall admins and sales, by id, mobile and name."""

    ids: set[str] = field(default_factory=set)
    phones: dict[str, str] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)


def require_business_key(mapping: HeaderMapping) -> None:
    if not any(k in mapping.index for k in BUSINESS_KEYS):
        raise InvalidArgument("no customer code or name column (e.g. 客户编号, 客户名称, name) in the header row; "
                              "if the header looks garbled, choose another encoding", field="file")


def _yuan_to_fen(value: str, name: str) -> int:
    text = value.strip().replace(",", "").replace("，", "").removeprefix("¥").removeprefix("￥").removesuffix("元")
    if not MONEY.match(text):
        raise InvalidArgument("must be an amount in yuan, at least 0, with at most two decimals", field=name)
    try:
        fen = int(Decimal(text) * 100)
    except InvalidOperation:
        raise InvalidArgument("must be an amount in yuan", field=name) from None
    if fen > MAX_MONEY:
        raise InvalidArgument("is too large", field=name)
    return fen


def _count(value: str, name: str) -> int:
    text = value.strip().removesuffix("天").removesuffix("年").strip()
    if not text.isdigit() or len(text) > 9:
        raise InvalidArgument("must be a whole number, at least 0", field=name)
    return int(text)


def _date(value: str, name: str) -> str:
    text = value.strip()
    parts = DATE_PARTS.match(text.split(" ")[0])
    if parts is None:
        raise InvalidArgument("must be a date as YYYY-MM-DD", field=name)
    year, month, day = (int(p) for p in parts.groups())
    return f"{year:04d}-{month:02d}-{day:02d}"


def _label(table: dict[str, int], value: str, name: str) -> int:
    text = value.strip().casefold().removesuffix("客户").removesuffix("客戶")
    found = table.get(text)
    if found is None:
        raise InvalidArgument(f"must be one of {'/'.join(k for k in table if not k.isascii())}", field=name)
    return found


class BusinessRowChecker:
    """Checks rows one by one and remembers the keys of the rows it accepted, for duplicates."""

    def __init__(self, mapping: HeaderMapping, staff: StaffReference) -> None:
        self.mapping = mapping
        self.staff = staff
        self.codes: dict[str, int] = {}
        self.names: dict[str, int] = {}
        self.phones: dict[str, int] = {}
        self.emails: dict[str, int] = {}

    def _owner(self, value: str) -> str:
        text = value.strip()
        if text in self.staff.ids:
            return text
        if text in self.staff.phones:
            return self.staff.phones[text]
        named = self.staff.names.get(text.casefold(), [])
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise InvalidArgument(f"{len(named)} staff members are called {text!r}; give the id or mobile",
                                  field="owner_staff_id")
        raise InvalidArgument(f"no enabled administrator or salesperson {text!r} (id, mobile or name)",
                              field="owner_staff_id")

    def _values(self, cells: list[str]) -> dict[str, Any]:
        request = bpb.CreateBusinessCustomerRequest()
        paths: set[str] = set()
        out: dict[str, Any] = {}
        width = len(cells)
        for name, i in self.mapping.index.items():
            raw = cells[i].strip() if i < width else ""
            if not raw:
                continue
            if name == "code":
                code = raw.upper()
                if not CODE.match(code):
                    raise InvalidArgument("must be a code as CUS + YYYYMMDD + 4 digits", field="code")
                out["code"] = code
            elif name == "owner_staff_id":
                out["owner_staff_id"] = self._owner(raw)
            elif name == "type":
                request.type = enum_of(bpb.BusinessCustomerType, _label(TYPES, raw, name))
            elif name == "status":
                request.status = enum_of(bpb.BusinessCustomerStatus, _label(STATUSES, raw, name))
            elif name in archive.MONEY_FIELDS:
                setattr(request, name, _yuan_to_fen(raw, name))
            elif name in INT_FIELDS:
                setattr(request, name, _count(raw, name))
            elif name == "founded_date":
                request.founded_date = _date(raw, name)
            else:
                setattr(request, name, raw)
            if name in ARCHIVE_PATHS:
                paths.add(name)
        out.update(archive.archive_values(request, paths))
        return out

    def check(self, number: int, cells: list[str]) -> RowResult:
        if all(not c or c.isspace() for c in cells):
            return RowResult(number, EMPTY, reason="empty row")
        try:
            values = self._values(cells)
        except InvalidArgument as err:
            return RowResult(number, INVALID, field=err.field or "", reason=err.message)
        code, name = values.get("code"), values.get("name")
        if code is None and name is None:
            return RowResult(number, INVALID, field="name", reason="no customer code or name (one is required)")
        name_key = name.casefold() if code is None and name is not None else None
        for key, seen, field_name, what in ((code, self.codes, "code", "customer code"),
                                            (name_key, self.names, "name", "name (and no code)"),
                                            (values.get("phone"), self.phones, "phone", "phone"),
                                            (values.get("email"), self.emails, "email", "email")):
            if key is not None and key in seen:
                return RowResult(number, DUPLICATE, field=field_name, reason=f"same {what} as row {seen[key]}")
        for key, seen in ((code, self.codes), (name_key, self.names), (values.get("phone"), self.phones),
                          (values.get("email"), self.emails)):
            if key is not None:
                seen[key] = number
        return RowResult(number, OK, values=values)
