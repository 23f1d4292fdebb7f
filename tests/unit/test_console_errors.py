"""The console shows an API error by its stable reason, in the person's language, beside the field it names."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from gateway.console import api
from gateway.console.i18n import CATALOGUES, Labels
from services.common import errors

ROOT = Path(__file__).resolve().parents[2]
REASON = re.compile(r"`([A-Z][A-Z_]+)`")
RAISED_WITH = re.compile(r"""error_reason\s*=\s*["']([A-Z][A-Z_]+)["']""")


def documented_reasons() -> set[str]:
    """Every reason docs/errors.md names in its "Reasons" section: the table's, and the gateway's own below it."""
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    section = text.split("\n## Reasons", 1)[1].split("\n## ", 1)[0]
    return set(REASON.findall(section))


def raised_reasons() -> set[str]:
    """The reasons the code can send: services/common/errors.py's tables and every ``error_reason=``."""
    found = set(errors.REASONS.values()) | set(errors.FIELD_REASONS.values())
    for folder in ("services", "gateway"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(RAISED_WITH.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_document_lists_every_reason_the_code_sends():
    assert raised_reasons() <= documented_reasons()
    assert {"FIELD_INVALID", "PHONE_HELD_BY_DELETED_CUSTOMER", "METHOD_NOT_ALLOWED"} <= documented_reasons()


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
def test_every_reason_has_a_text_in_every_catalogue(lang):
    missing = sorted(r for r in documented_reasons() | raised_reasons() if f"error.{r}" not in CATALOGUES[lang])
    assert not missing, f"{lang} lacks error texts for {missing}"


def gateway_error(status: int, code: str, message: str, reason: str, field: str = "") -> httpx.Response:
    """The gateway's JSON error (gateway/errors.py): the reason at the top and in the ErrorInfo detail."""
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "crowdpack.io",
            "metadata": {"field": field} if field else {}}
    body = {"code": code, "message": message, "reason": reason, "details": [info]}
    if field:
        body["field"] = field
    return httpx.Response(status, json={"error": body})


def test_an_invalid_field_reads_in_chinese_beside_that_field_with_the_servers_detail():
    err = api._error_of(gateway_error(400, "INVALID_ARGUMENT", "to_staff_id: required", "FIELD_INVALID",
                                      "to_staff_id"), Labels("zh-CN"))
    assert (err.field, err.reason, err.message) == ("to_staff_id", "FIELD_INVALID", "填写有误：required")
    assert err.server_message == "to_staff_id: required"


def test_a_reason_without_detail_reads_as_the_catalogue_says_in_either_language():
    response = gateway_error(409, "ALREADY_EXISTS", "phone: 13800000001 belongs to customer 7", "PHONE_TAKEN", "phone")
    assert api._error_of(response, Labels("zh-CN")).message == "该手机号已被其他客户使用"
    assert api._error_of(response, Labels("en")).message == "Another customer has this phone number"


def test_the_reason_is_read_from_the_error_info_when_the_top_level_lacks_it():
    body = {"error": {"code": "FAILED_PRECONDITION", "message": "points: balance 10 < 20", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INSUFFICIENT_BALANCE"}]}}
    assert api._error_of(httpx.Response(400, json=body), Labels("zh-CN")).message == "余额不足"


def test_an_unknown_reason_or_none_falls_back_to_the_servers_message():
    unknown = gateway_error(400, "FAILED_PRECONDITION", "something new happened", "SOMETHING_NEW")
    assert api._error_of(unknown, Labels("zh-CN")).message == "something new happened"
    assert api._error_of(httpx.Response(502, text="<html>"), Labels("zh-CN")).message == "Bad Gateway"
    assert api._error_of(unknown).message == "something new happened"  # no language chosen: as the server said


def test_the_detail_drops_the_field_the_page_already_shows():
    assert api.detail_of("phone: must be 11 digits", "phone") == "must be 11 digits"
    assert api.detail_of("filter.levels: too many", None) == "too many"
    assert api.detail_of("the gateway is busy", None) == "the gateway is busy"
