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
