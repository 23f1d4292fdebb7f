"""The gateway's ledger routes: balances, statements, manual adjustments and reason templates over HTTP/JSON."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.auth import Caller, Role
from tests.support.identity import access_headers

pytestmark = pytest.mark.database("ledger")


ADMIN = access_headers(Caller(staff_id="boss", role=Role.SUPER_ADMIN))
CLERK = access_headers(Caller(staff_id="li", role=Role.MALL_ADMIN, mall_ids=frozenset({"100"})))


async def test_balances_statements_adjustments_and_templates_over_http(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")  # the clerk's member
    settings = GatewaySettings(ledger_address=f"127.0.0.1:{ledger.runtime.port}")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            assert (await http.get("/v1/members/1/balances")).status_code == 401

            made = await http.post("/v1/reasonTemplates", headers={**ADMIN, "Idempotency-Key": "t1"},
                                   json={"asset": "ASSET_POINTS", "name": "补录消费积分"})
            assert made.status_code == 200, made.text
            template = made.json()["reason_template"]
            assert (template["name"], template["asset"], template["operator_id"]) == ("补录消费积分", "ASSET_POINTS",
                                                                                   "boss")
            listed = (await http.get("/v1/reasonTemplates", params={"asset": "ASSET_POINTS"}, headers=CLERK)).json()
            assert [t["reason_template_id"] for t in listed["reason_templates"]] == [template["reason_template_id"]]

            adjustment = {"asset": "ASSET_POINTS", "direction": "DIRECTION_INCREASE", "value": 300,
                          "reason_template_id": template["reason_template_id"], "description": "小票补录",
                          "document_time": "2024-05-01T10:00:00Z", "store_id": "7"}
            first = await http.post("/v1/members/1/adjustments", headers={**CLERK, "Idempotency-Key": "adj-1"},
                                    json=adjustment)
            assert first.status_code == 200, first.text
            entry = first.json()["entry"]
            assert (entry["amount"], entry["balance_after"], entry["mall_id"], entry["operator_id"]) == (
                300, 300, "100", "li")
            again = await http.post("/v1/members/1/adjustments", headers={**CLERK, "Idempotency-Key": "adj-1"},
                                    json=adjustment)
            assert again.json()["entry"] == entry
            several_malls = await http.post("/v1/members/1/adjustments", headers={**ADMIN, "Idempotency-Key": "a2"},
                                            json=adjustment)
            assert several_malls.status_code == 400
            assert several_malls.json()["error"]["field"] == "mall_id"
            too_much = await http.post("/v1/members/1/adjustments", headers={**CLERK, "Idempotency-Key": "a3"},
                                       json={**adjustment, "direction": "DIRECTION_DECREASE", "value": 301})
            assert (too_much.status_code, too_much.json()["error"]["code"], too_much.json()["error"]["field"]) == (
                400, "FAILED_PRECONDITION", "value")

            balances = (await http.get("/v1/members/1/balances", headers=CLERK)).json()
            assert {a["asset"]: a["balance"] for a in balances["accounts"]} == {
                "ASSET_POINTS": 300, "ASSET_BALANCE": 0, "ASSET_RED_PACKET": 0}
            statement = await http.get("/v1/entries", headers=CLERK, params=[("member_id", "1"),
                ("asset", "ASSET_POINTS"), ("kinds", "ENTRY_KIND_ADJUST"), ("kinds", "ENTRY_KIND_EARN"),
                ("page_size", "10")])
            assert statement.status_code == 200, statement.text
            assert [(e["kind"], e["amount"], e["reason"]) for e in statement.json()["entries"]] == [
                ("ENTRY_KIND_ADJUST", 300, "补录消费积分")]
            unknown = await http.get("/v1/entries", headers=CLERK, params={"member_id": "1", "asset": "ASSET_POINTS",
                                                                           "colour": "red"})
            assert (unknown.status_code, unknown.json()["error"]["field"]) == (400, "colour")
            missing = await http.get("/v1/members/404/balances", headers=CLERK)
            assert (missing.status_code, missing.json()["error"]["field"]) == (404, "member_id")

            renamed = await http.patch(f"/v1/reasonTemplates/{template['reason_template_id']}", headers=ADMIN,
                                       json={"name": "补录积分"})
            assert renamed.json()["reason_template"]["name"] == "补录积分"
            deleted = await http.delete(f"/v1/reasonTemplates/{template['reason_template_id']}", headers=ADMIN)
            assert deleted.status_code == 200
            gone = await http.get(f"/v1/reasonTemplates/{template['reason_template_id']}", headers=ADMIN)
            assert gone.status_code == 404


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # a PNG's signature and some body


async def test_a_voucher_file_is_uploaded_referenced_by_an_adjustment_and_read_back(ledger):
    await ledger.open_malls()
    await ledger.open_members("1", registration_mall_id="100")  # the clerk's member
    await ledger.open_members("2", registration_mall_id="200")  # not the clerk's
    app = create_app(GatewaySettings(ledger_address=f"127.0.0.1:{ledger.runtime.port}"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            def upload(member: str, data: bytes, key: str, who=CLERK, name: str = "小票.png"):
                return http.post(f"/v1/members/{member}/voucherFiles", headers={**who, "Idempotency-Key": key},
                                 files={"file": (name, data, "application/octet-stream")})

            stored = await upload("1", PNG, "v1")
            assert stored.status_code == 200, stored.text
            file = stored.json()["file"]
            assert (file["member_id"], file["file_name"], file["content_type"], int(file["size"]),
                    file["uploader_id"]) == ("1", "小票.png", "image/png", len(PNG), "li")
            assert file["reference"] == f"/v1/voucherFiles/{file['file_id']}"
            assert (await upload("1", PNG, "v1")).json()["file"] == file  # a repeat answers as the first did
            conflict = await upload("1", PNG + b"x", "v1")
            assert (conflict.status_code, conflict.json()["error"]["field"]) == (409, "request_id")

            # Not an image or PDF, empty, another mall's member, a member's unknown: refused naming the field.
            for reply, status, field in [
                (await upload("1", b"MZ\x90\x00 not a picture", "v2"), 400, "file"),
                (await upload("1", b"", "v3"), 400, "file"),
                (await upload("2", PNG, "v4"), 403, None),
                (await upload("404", PNG, "v5"), 404, "member_id"),
                (await upload("x", PNG, "v6"), 400, "member_id"),
            ]:
                assert (reply.status_code, reply.json()["error"].get("field")) == (status, field), reply.text

            template = (await http.post("/v1/reasonTemplates", headers=ADMIN, json={
                "asset": "ASSET_POINTS", "name": "补录消费积分"})).json()["reason_template"]
            adjusted = await http.post("/v1/members/1/adjustments", headers=CLERK, json={
                "asset": "ASSET_POINTS", "direction": "DIRECTION_INCREASE", "value": 50,
                "reason_template_id": template["reason_template_id"], "voucher": file["reference"]})
            assert adjusted.json()["entry"]["voucher"] == file["reference"], adjusted.text

            read = await http.get(file["reference"], headers=CLERK)
            assert read.status_code == 200, read.text
            import base64

            assert base64.b64decode(read.json()["content"]) == PNG and read.json()["file"] == file
            outsider = access_headers(Caller(staff_id="wang", role=Role.MALL_ADMIN, mall_ids=frozenset({"200"})))
            assert (await http.get(file["reference"], headers=outsider)).status_code == 403
            sales = access_headers(Caller(staff_id="s", role=Role.SALES))
            assert (await upload("1", PNG, "v7", who=sales)).status_code == 403
            missing = await http.get("/v1/voucherFiles/999", headers=ADMIN)
            assert (missing.status_code, missing.json()["error"]["field"]) == (404, "file_id")
