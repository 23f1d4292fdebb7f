"""The vertical slice through real processes: gateway -> customer -> NATS -> ledger -> gateway."""

from __future__ import annotations

import time

import httpx

AUTH = {"Authorization": "Bearer dev-admin-token"}


def wait_for_points(client: httpx.Client, member_id: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/v1/members/{member_id}/points", headers=AUTH)
        if resp.status_code != 404 or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def test_post_member_then_points_balance_is_zero(system):
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        created = client.post("/v1/members", headers=AUTH, json={"phone": "13800138000", "name": "李四",
                                                                 "gender": "GENDER_MALE"})
        assert created.status_code == 201, created.text
        member = created.json()
        assert member["phone"] == "13800138000" and member["name"] == "李四"
        got = client.get(f"/v1/members/{member['member_id']}", headers=AUTH)
        assert got.status_code == 200 and got.json() == member
        points = wait_for_points(client, member["member_id"])
        assert points.status_code == 200, points.text
        assert points.json()["balance"] == 0 and points.json()["asset"] == "ASSET_POINTS"


def test_gateway_errors_are_json_and_name_the_field(system):
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
            (client.get("/v1/nowhere", headers=AUTH), 404, None),
        ]
        for resp, status, field in cases:
            assert resp.status_code == status, (resp.request.url, resp.text)
            error = resp.json()["error"]
            assert error["message"] and "Traceback" not in resp.text
            assert error.get("field") == field, (resp.request.url, error)
        # Nothing above was written.
        listed = client.get("/v1/members", headers=AUTH).json()
        assert listed["members"] == []


def test_idempotency_key_makes_a_retried_post_create_one_member(system):
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        headers = {**AUTH, "Idempotency-Key": "k-1"}
        first = client.post("/v1/members", headers=headers, json={"email": "a@b.cn"})
        second = client.post("/v1/members", headers=headers, json={"email": "a@b.cn"})
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        conflict = client.post("/v1/members", headers=headers, json={"email": "c@d.cn"})
        assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "request_id"
        assert len(client.get("/v1/members", headers=AUTH).json()["members"]) == 1
