"""The gateway as the frontends' door: sign-in, every service reached with the token, scopes, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import time
from contextlib import AsyncExitStack

import httpx
import pytest

from crowdpack.customer.v1 import member_service_pb2 as member_pb
from crowdpack.customer.v1 import member_service_pb2_grpc as member_grpc
from crowdpack.customer.v1 import organization_service_pb2 as org_pb
from crowdpack.customer.v1 import organization_service_pb2_grpc as org_grpc
from crowdpack.customer.v1 import session_service_pb2 as session_pb
from crowdpack.customer.v1 import session_service_pb2_grpc as session_grpc
from crowdpack.customer.v1 import settings_service_pb2 as settings_pb
from crowdpack.customer.v1 import settings_service_pb2_grpc as settings_grpc
from gateway.app import create_app
from gateway.config import GatewaySettings
from services.alert.assembly import build_spec as alert_spec
from services.alert.config import AlertSettings
from services.customer.config import CustomerSettings
from services.customer.service import build_spec as customer_spec
from services.ledger.config import LedgerSettings
from services.ledger.service import build_spec as ledger_spec
from tests.support.runtime import running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"
WECHAT_KEY = "wechat-mini-program-key"


@pytest.fixture
async def door(database_url, nats_url, tmp_path):
    """The three services in-process and the gateway app over ASGI; yields (http client, customer channel)."""
    async with AsyncExitStack() as stack:
        ports = {}
        channels = {}
        for name, build, settings_type in (("customer", customer_spec, CustomerSettings),
                                           ("ledger", ledger_spec, LedgerSettings),
                                           ("alert", alert_spec, AlertSettings)):
            url = database_url if name == "customer" else None
            settings = settings_type(grpc_port=0, metrics_port=0, database_url=url)
            runtime, channel = await stack.enter_async_context(
                running_service(build, settings, nats_url=nats_url, state_dir=tmp_path / name))
            ports[name], channels[name] = runtime.port, channel
        app = create_app(GatewaySettings(**{f"{n}_address": f"127.0.0.1:{p}" for n, p in ports.items()},
                                         channel_api_keys={"wechat": hashlib.sha256(WECHAT_KEY.encode()).hexdigest()}))
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway"))
        yield client, channels["customer"]


async def make_staff(channel, phone: str, role: int, malls: list[str] = ()) -> str:
    org = org_grpc.OrganizationServiceStub(channel)
    staff = (await org.CreateStaff(org_pb.CreateStaffRequest(
        request_id=f"staff-{phone}", name=f"员工{phone[-4:]}", phone=phone, role=role, mall_ids=malls))).staff
    await session_grpc.SessionServiceStub(channel).SetStaffPassword(session_pb.SetStaffPasswordRequest(
        request_id=f"pw-{phone}", staff_id=staff.staff_id, new_password=PASSWORD))
    return staff.staff_id


async def sign_in(client: httpx.AsyncClient, phone: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/sessions", json={"login": phone, "password": password})


async def test_sign_in_reach_every_service_refresh_and_sign_out(door):
    client, channel = door
    await make_staff(channel, "13900000001", org_pb.STAFF_ROLE_SUPER_ADMIN)
    assert (await client.get("/v1/members")).status_code == 401
    wrong = await sign_in(client, "13900000001", "not the password")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHENTICATED"
    signed = await sign_in(client, "13900000001")
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["staff"]["role"] == "super_admin" and body["tokens"]["expires_in"] == 900
    assert PASSWORD not in signed.text
    auth = {"Authorization": f"Bearer {body['tokens']['access_token']}"}
    created = await client.post("/v1/members", json={"phone": "13800000077"}, headers=auth)
    assert created.status_code == 200, created.text
    member_id = created.json()["member"]["member_id"]
    for path in ("/v1/members", f"/v1/members/{member_id}", "/v1/reasonTemplates", "/v1/alert-whitelist",
                 "/v1/malls", "/v1/members?page_size=5&filter.card_opened=TRI_STATE_NO&filter.levels=1&filter.levels=2"):
        reply = await client.get(path, headers=auth)
        assert reply.status_code == 200, (path, reply.text)
    # The refresh token rotates: the new one works, the old one is refused and ends the sign-in.
    refresh = body["tokens"]["refresh_token"]
    rotated = await client.post("/v1/sessions:refresh", json={"refresh_token": refresh})
    assert rotated.status_code == 200, rotated.text
    newer = rotated.json()["tokens"]["refresh_token"]
    again = await client.post("/v1/sessions:refresh", json={"refresh_token": refresh})
    assert again.status_code == 401
    assert (await client.post("/v1/sessions:refresh", json={"refresh_token": newer})).status_code == 401
    # Sign out revokes.
    fresh = (await sign_in(client, "13900000001")).json()["tokens"]["refresh_token"]
    assert (await client.post("/v1/sessions:revoke", json={"refresh_token": fresh})).status_code == 200
    assert (await client.post("/v1/sessions:refresh", json={"refresh_token": fresh})).status_code == 401


async def test_a_mall_admin_is_refused_another_malls_members(door):
    client, channel = door
    org = org_grpc.OrganizationServiceStub(channel)
    mall_a = (await org.CreateMall(org_pb.CreateMallRequest(request_id="a", name="甲商场"))).mall.mall_id
    mall_b = (await org.CreateMall(org_pb.CreateMallRequest(request_id="b", name="乙商场"))).mall.mall_id
    await make_staff(channel, "13900000002", org_pb.STAFF_ROLE_MALL_ADMIN, [mall_a])
    token = (await sign_in(client, "13900000002")).json()["tokens"]["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    mine = await client.post("/v1/members", json={"phone": "13800000001", "registration_mall_id": mall_a},
                             headers=auth)
    assert mine.status_code == 200, mine.text
    members = member_grpc.MemberServiceStub(channel)
    theirs = (await members.CreateMember(member_pb.CreateMemberRequest(
        request_id="theirs", phone="13800000002", registration_mall_id=mall_b))).member.member_id
    refused = await client.get(f"/v1/members/{theirs}", headers=auth)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "PERMISSION_DENIED"), refused.text
    assert (await client.get(f"/v1/members/{mine.json()['member']['member_id']}", headers=auth)).status_code == 200
    listed = (await client.get("/v1/members", headers=auth)).json()["members"]
    assert [m["member_id"] for m in listed] == [mine.json()["member"]["member_id"]]


async def test_the_crowd_filter_travels_in_the_post_forms_of_the_member_list_and_download(door):
    """A crowd filter (condition groups) cannot ride a query string: POST /v1/members:search and
    POST /v1/members:export carry it as JSON and answer as their GET forms do."""
    client, channel = door
    await make_staff(channel, "13900000008", org_pb.STAFF_ROLE_SUPER_ADMIN)
    auth = {"Authorization": f"Bearer {(await sign_in(client, '13900000008')).json()['tokens']['access_token']}"}
    mall = (await client.post("/v1/malls", json={"name": "一号商场"}, headers=auth)).json()["mall"]["mall_id"]
    men = []
    for n, gender in enumerate(("GENDER_MALE", "GENDER_FEMALE", "GENDER_MALE", "GENDER_UNKNOWN")):
        made = await client.post("/v1/members", json={"phone": f"1370000000{n}", "gender": gender,
                                                       "registration_mall_id": mall}, headers=auth)
        assert made.status_code == 200, made.text
        if gender == "GENDER_MALE":
            men.append(made.json()["member"]["member_id"])
    crowd = {"groups": [{"conditions": [{"gender": {"genders": ["GENDER_MALE"]}}]}]}
    search = {"filter": {"crowd": crowd, "crowd_mall_id": mall}, "include_total": True,
              "order_by": "MEMBER_ORDER_BY_CREATE_TIME", "ascending": True}

    async def searched() -> httpx.Response:
        # The crowd index takes new members from their events: the filter sees them once it has caught up.
        found = await client.post("/v1/members:search", json=search, headers=auth)
        assert found.status_code == 200, found.text
        assert [m["member_id"] for m in found.json()["members"]] == men
        return found

    found = await eventually(searched)
    assert int(found.json()["total_size"]) == 2
    # Paging carries on in the same form.
    first = (await client.post("/v1/members:search", json={**search, "page_size": 1}, headers=auth)).json()
    second = (await client.post("/v1/members:search", json={**search, "page_size": 1,
                                                            "page_token": first["next_page_token"]},
                                headers=auth)).json()
    assert [first["members"][0]["member_id"], second["members"][0]["member_id"]] == men
    # A bad condition is a 400 naming the field inside the filter.
    bad = await client.post("/v1/members:search", json={"filter": {"crowd": crowd}}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "filter.crowd_mall_id", bad.text
    unknown = await client.post("/v1/members:search", json={"filter": {"crowd": {"groups": [{"colour": 1}]}}},
                                headers=auth)
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (400, "filter.crowd.groups[0].colour")

    exported = await client.post("/v1/members:export", json={"filter": search["filter"], "max_rows": 10_000},
                                 headers=auth)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert 'filename="members.csv"' in exported.headers["content-disposition"]
    assert exported.headers["x-row-count"] == "2" and exported.headers["x-truncated"] == "false"
    lines = exported.content.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 3 and all("13700000001" not in line for line in lines)


async def test_sign_in_is_rate_limited_with_retry_after(door):
    client, channel = door
    await make_staff(channel, "13900000003", org_pb.STAFF_ROLE_SUPER_ADMIN)
    for _ in range(5):
        assert (await sign_in(client, "13900000003", "wrong password")).status_code == 401
    blocked = await sign_in(client, "13900000003")  # even the right password waits
    assert blocked.status_code == 429, blocked.text
    assert int(blocked.headers["Retry-After"]) > 0


async def test_bad_input_is_a_4xx_naming_the_field_or_route(door):
    client, channel = door
    await make_staff(channel, "13900000004", org_pb.STAFF_ROLE_SUPER_ADMIN)
    auth = {"Authorization": f"Bearer {(await sign_in(client, '13900000004')).json()['tokens']['access_token']}"}
    cases = [
        (client.post("/v1/members", content=b"{not json", headers=auth), 400, "body"),
        (client.post("/v1/members", json={"phone": "13800000009", "colour": "red"}, headers=auth), 400, "colour"),
        (client.post("/v1/members", json={"phone": ["x"]}, headers=auth), 400, "phone"),
        (client.post("/v1/members", json={"phone": "1"}, headers=auth), 400, "phone"),
        (client.get("/v1/members?page_size=abc", headers=auth), 400, "page_size"),
        (client.get("/v1/members?nope=1", headers=auth), 400, "nope"),
        (client.get("/v1/members?filter.card_opened=maybe", headers=auth), 400, "filter.card_opened"),
        (client.post("/v1/members", content=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=auth), 413, "body"),
        (client.get("/v1/no-such-thing", headers=auth), 404, "route"),
        (client.put("/v1/members", headers=auth), 405, "route"),
        (client.get("/v1/members", headers={"Authorization": "Bearer forged.token.here"}), 401, "Authorization"),
    ]
    for pending, status, field in cases:
        reply = await pending
        assert (reply.status_code, reply.json()["error"].get("field")) == (status, field), reply.text


async def test_a_member_session_reaches_its_own_member_and_nothing_else(door):
    client, channel = door
    members = member_grpc.MemberServiceStub(channel)
    mine = (await members.CreateMember(member_pb.CreateMemberRequest(
        request_id="m1", phone="13700000001", name="小王", wechat_openid="wx-openid-1"))).member.member_id
    other = (await members.CreateMember(member_pb.CreateMemberRequest(
        request_id="m2", phone="13700000002"))).member.member_id
    exchange = {"channel": "MEMBER_CHANNEL_WECHAT", "channel_user_id": "wx-openid-1", "phone": "13700000001"}
    assert (await client.post("/v1/memberSessions", json=exchange)).status_code == 401
    wrong_key = await client.post("/v1/memberSessions", json=exchange, headers={"X-Api-Key": "guess"})
    assert wrong_key.status_code == 401
    other_channel = await client.post("/v1/memberSessions", headers={"X-Api-Key": WECHAT_KEY},
                                      json={**exchange, "channel": "MEMBER_CHANNEL_ALIPAY"})
    assert other_channel.status_code == 403
    unknown = await client.post("/v1/memberSessions", headers={"X-Api-Key": WECHAT_KEY},
                                json={**exchange, "channel_user_id": "wx-nobody", "phone": "13700000009"})
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (404, "channel_user_id")
    session = await client.post("/v1/memberSessions", headers={"X-Api-Key": WECHAT_KEY}, json=exchange)
    assert session.status_code == 200, session.text
    assert session.json()["member_id"] == mine
    auth = {"Authorization": f"Bearer {session.json()['access_token']}"}

    # The profile follows the tenant settings: user id hidden by default, then shown.
    profile = (await client.get(f"/v1/members/{mine}/profile", headers=auth)).json()["profile"]
    assert (profile["user_id"], profile["name"], profile["card"]["opened"]) == ("", "小王", False)
    await settings_grpc.SettingsServiceStub(channel).UpdateTenantSettings(settings_pb.UpdateTenantSettingsRequest(
        request_id="show-id", settings=settings_pb.TenantSettings(show_user_id=True), update_mask={"paths": [
            "show_user_id"]}))
    assert (await client.get(f"/v1/members/{mine}/profile", headers=auth)).json()["profile"]["user_id"] == mine

    # Balances (once the ledger has opened the accounts from the member-created event), statements, eligibility.
    deadline = time.monotonic() + 15
    while (balances := await client.get(f"/v1/members/{mine}/balances", headers=auth)).status_code == 404:
        assert time.monotonic() < deadline, balances.text
        await asyncio.sleep(0.05)
    assert sorted(a["asset"] for a in balances.json()["accounts"]) == [
        "ASSET_BALANCE", "ASSET_POINTS", "ASSET_RED_PACKET"]
    statement = await client.get(f"/v1/entries?member_id={mine}&asset=ASSET_POINTS&page_size=10", headers=auth)
    assert statement.status_code == 200, statement.text
    eligible = await client.get(f"/v1/members/{mine}:checkOrderEligibility", headers=auth)
    assert eligible.status_code == 200, eligible.text

    # Everything else is refused with 403.
    for method, path in [("GET", f"/v1/members/{other}/profile"), ("GET", f"/v1/members/{other}"),
                         ("GET", f"/v1/members/{other}/balances"), ("GET", f"/v1/entries?member_id={other}"),
                         ("GET", "/v1/entries?asset=ASSET_POINTS"), ("GET", "/v1/members"), ("GET", "/v1/malls"),
                         ("POST", "/v1/members"), ("POST", "/v1/members:search"),
                         ("POST", f"/v1/members/{mine}/adjustments")]:
        refused = await client.request(method, path, headers=auth, json={} if method == "POST" else None)
        assert refused.status_code == 403, (method, path, refused.text)


async def test_errors_carry_their_stable_reason_and_details_over_http(door):
    client, channel = door
    await make_staff(channel, "13900000005", org_pb.STAFF_ROLE_SUPER_ADMIN)
    auth = {"Authorization": f"Bearer {(await sign_in(client, '13900000005')).json()['tokens']['access_token']}"}
    bad = (await client.post("/v1/members", json={"phone": "1"}, headers={**auth, "Idempotency-Key": "b"})).json()
    assert (bad["error"]["code"], bad["error"]["reason"], bad["error"]["field"]) == (
        "INVALID_ARGUMENT", "FIELD_INVALID", "phone")
    info = next(d for d in bad["error"]["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert info == {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "FIELD_INVALID",
                    "domain": "crowdpack.io", "metadata": {"field": "phone"}}
    assert any(d["@type"].endswith("google.rpc.BadRequest") for d in bad["error"]["details"])

    made = await client.post("/v1/members", json={"phone": "13800000031", "email": "x@example.com"},
                             headers={**auth, "Idempotency-Key": "m1"})
    member_id = made.json()["member"]["member_id"]
    taken = await client.post("/v1/members", json={"phone": "13800000031"}, headers={**auth, "Idempotency-Key": "m2"})
    assert (taken.status_code, taken.json()["error"]["reason"]) == (409, "PHONE_TAKEN")
    # A deleted member's phone: 400 with the reason, the deleted customer and how an admin frees it.
    assert (await client.delete(f"/v1/members/{member_id}", headers={**auth, "Idempotency-Key": "d"})).status_code \
        == 200
    held = await client.post("/v1/members", json={"phone": "13800000031"}, headers={**auth, "Idempotency-Key": "m3"})
    error = held.json()["error"]
    assert (held.status_code, error["code"], error["reason"]) == (400, "FAILED_PRECONDITION",
                                                                  "PHONE_HELD_BY_DELETED_CUSTOMER")
    assert error["details"][0]["metadata"] == {"field": "phone", "customer_id": member_id}
    freed = await client.post(f"/v1/members/{member_id}:releaseContacts", json={},
                              headers={**auth, "Idempotency-Key": "r"})
    assert freed.json() == {"released_phone": "13800000031", "released_email": "x@example.com"}, freed.text
    again = await client.post("/v1/members", json={"phone": "13800000031"}, headers={**auth, "Idempotency-Key": "m4"})
    assert again.status_code == 200, again.text

    # The gateway's own errors carry a reason too.
    route = (await client.get("/v1/no-such-thing", headers=auth)).json()["error"]
    assert (route["reason"], route["details"][0]["metadata"]) == ("NOT_FOUND", {"field": "route"})
    forged = (await client.get("/v1/members", headers={"Authorization": "Bearer forged.token.here"})).json()
    assert forged["error"]["reason"] == "UNAUTHENTICATED"


async def test_business_transfer_applications_and_follow_ups_over_http(door):
    client, channel = door
    await make_staff(channel, "13900000011", org_pb.STAFF_ROLE_SUPER_ADMIN)
    seller = await make_staff(channel, "13900000012", org_pb.STAFF_ROLE_SALES)
    heir = await make_staff(channel, "13900000013", org_pb.STAFF_ROLE_SALES)
    admin = {"Authorization": "Bearer " + (await sign_in(client, "13900000011")).json()["tokens"]["access_token"]}
    sales = {"Authorization": "Bearer " + (await sign_in(client, "13900000012")).json()["tokens"]["access_token"]}

    created = await client.post("/v1/businessCustomers", json={"name": "华东贸易有限公司"},
                                headers={**sales, "Idempotency-Key": "c1"})
    assert created.status_code == 200, created.text
    customer_id = created.json()["business_customer"]["customer_id"]

    followed = await client.post(f"/v1/businessCustomers/{customer_id}/followUps",
                                 json={"method": "FOLLOW_UP_METHOD_VISIT", "content": "上门拜访"},
                                 headers={**sales, "Idempotency-Key": "f1"})
    assert followed.status_code == 200, followed.text
    assert followed.json()["business_customer"]["last_follow_up_time"]
    bad = await client.post(f"/v1/businessCustomers/{customer_id}/followUps", json={"content": "无方式"},
                            headers={**sales, "Idempotency-Key": "f2"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "method"
    listed = await client.get(f"/v1/businessCustomers/{customer_id}/followUps", headers=sales)
    assert [f["content"] for f in listed.json()["follow_ups"]] == ["上门拜访"]

    applied = await client.post(f"/v1/businessCustomers/{customer_id}/transferApplications",
                                json={"to_staff_id": heir, "reason": "区域调整"},
                                headers={**sales, "Idempotency-Key": "a1"})
    assert applied.status_code == 200, applied.text
    application_id = applied.json()["transfer_application"]["transfer_application_id"]
    refused = await client.post(f"/v1/transferApplications/{application_id}:approve", json={},
                                headers={**sales, "Idempotency-Key": "self"})
    assert refused.status_code == 403
    approved = await client.post(f"/v1/transferApplications/{application_id}:approve", json={"decision_note": "同意"},
                                 headers={**admin, "Idempotency-Key": "ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["transfer"]["requested_by"] == seller
    got = await client.get(f"/v1/businessCustomers/{customer_id}", headers=admin)
    assert got.json()["business_customer"]["owner_staff_id"] == heir
    pending = await client.get("/v1/transferApplications", params={"states": "TRANSFER_APPLICATION_STATE_PENDING"},
                               headers=admin)
    assert pending.status_code == 200 and pending.json().get("transfer_applications", []) == []
