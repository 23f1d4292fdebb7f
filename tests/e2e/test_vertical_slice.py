"""The vertical slice through real processes: gateway -> customer -> NATS -> ledger -> gateway."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

PASSWORD = "first admin password"


def first_admin(system) -> dict[str, str]:
    """As a new operator would: create the first super admin with the CLI, sign in over HTTP."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "staff", "create-admin", "--phone", "13900000000", "--password-stdin",
         "--customer", system.processes["customer"].address],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, env=system.base_env)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    signed = httpx.post(f"{system.gateway_url}/v1/sessions", json={"login": "13900000000", "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    return {"Authorization": f"Bearer {signed.json()['tokens']['access_token']}"}


@pytest.fixture
def AUTH(system) -> dict[str, str]:
    return first_admin(system)


def wait_for_points(client: httpx.Client, member_id: str, AUTH, timeout: float = 15.0) -> httpx.Response:  # noqa: N803 - the AUTH fixture is a constant
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/v1/members/{member_id}/balances?asset=ASSET_POINTS", headers=AUTH)
        if resp.status_code != 404 or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def test_post_member_then_points_balance_is_zero(system, AUTH):  # noqa: N803 - the AUTH fixture is a constant
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        created = client.post("/v1/members", headers=AUTH, json={"phone": "13800138000", "name": "李四",
                                                                 "gender": "GENDER_MALE"})
        assert created.status_code == 200, created.text
        member = created.json()["member"]
        assert member["phone"] == "13800138000" and member["name"] == "李四"
        got = client.get(f"/v1/members/{member['member_id']}", headers=AUTH)
        assert got.status_code == 200 and got.json()["member"] == member
        points = wait_for_points(client, member["member_id"], AUTH)
        assert points.status_code == 200, points.text
        account = points.json()["accounts"][0]
        assert account["balance"] == 0 and account["asset"] == "ASSET_POINTS"
        # A route of every service with the same token.
        for path in ("/v1/reasonTemplates", "/v1/alert-whitelist", "/v1/malls", "/v1/levels"):
            assert client.get(path, headers=AUTH).status_code == 200, path


def test_gateway_errors_are_json_and_name_the_field(system, AUTH):  # noqa: N803 - the AUTH fixture is a constant
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        cases = [
            (client.post("/v1/members", headers=AUTH, content=b"{not json"), 400, "body"),
            (client.post("/v1/members", headers=AUTH, json=[1, 2]), 400, "body"),
            (client.post("/v1/members", headers=AUTH, json={"phone": "123"}), 400, "phone"),
            (client.post("/v1/members", headers=AUTH, json={"phone": "13800138001", "colour": "red"}), 400, "colour"),
            (client.post("/v1/members", headers=AUTH, json={"phone": "13800138001", "gender": "PURPLE"}), 400,
             "gender"),
            (client.post("/v1/members", headers=AUTH, json={"phone": {"a": 1}}), 400, "phone"),
            (client.post("/v1/members", json={"phone": "13800138001"}), 401, "Authorization"),
            (client.post("/v1/members", headers={"Authorization": "Bearer nope"}, json={}), 401, "Authorization"),
            (client.get("/v1/members/abc", headers=AUTH), 400, "member_id"),
            (client.get("/v1/members/999999", headers=AUTH), 404, "member_id"),
            (client.get("/v1/members?page_size=-3", headers=AUTH), 400, "page_size"),
            (client.get("/v1/members?page_size=x", headers=AUTH), 400, "page_size"),
            (client.get("/v1/nowhere", headers=AUTH), 404, "route"),
        ]
        for resp, status, field in cases:
            assert resp.status_code == status, (resp.request.url, resp.text)
            error = resp.json()["error"]
            assert error["message"] and "Traceback" not in resp.text
            assert error.get("field") == field, (resp.request.url, error)
        # Nothing above was written.
        listed = client.get("/v1/members", headers=AUTH).json()
        assert listed["members"] == []


def test_idempotency_key_makes_a_retried_post_create_one_member(system, AUTH):  # noqa: N803 - the AUTH fixture is a constant
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        headers = {**AUTH, "Idempotency-Key": "k-1"}
        first = client.post("/v1/members", headers=headers, json={"email": "a@b.cn"})
        second = client.post("/v1/members", headers=headers, json={"email": "a@b.cn"})
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        conflict = client.post("/v1/members", headers=headers, json={"email": "c@d.cn"})
        assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "request_id"
        assert len(client.get("/v1/members", headers=AUTH).json()["members"]) == 1
