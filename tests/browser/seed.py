"""What the operator finds when they first sign in: a super admin, a mall with stores, levels, a reason
template and members with opened cards. Everything but the first admin goes through the gateway's API."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.console.api import build_request
from services.supervisor import System

ADMIN_PHONE, ADMIN_PASSWORD = "13900000000", "console admin password"
LEVELS = {1: "普通会员", 2: "银卡会员", 3: "金卡会员"}
MEMBERS = (("13800000001", "王小明", "GENDER_MALE"), ("13800000002", "李晓红", "GENDER_FEMALE"),
           ("13800000003", "张伟", "GENDER_MALE"))


@dataclass
class Seeded:
    mall_id: str = ""
    store_ids: list[str] = field(default_factory=list)
    reason_template_id: str = ""
    members: dict[str, str] = field(default_factory=dict)  # phone -> member_id
    token: str = ""


class Gateway:
    """The gateway's API by RPC name, as the first admin (the console's own client builds the requests)."""

    def __init__(self, system: System, token: str) -> None:
        self.http = httpx.Client(base_url=system.gateway_url, headers={"authorization": f"Bearer {token}"},
                                 timeout=30)

    def __call__(self, rpc: str, request: dict[str, Any]) -> dict[str, Any]:
        method, path, query, body = build_request(rpc, request)
        answer = self.http.request(method, path, params=query, json=body)
        assert answer.status_code == 200, (rpc, answer.text)
        return answer.json()


def create_first_admin(system: System) -> str:
    """As a new operator would: the CLI creates the first super admin; returns an access token."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "staff", "create-admin", "--phone", ADMIN_PHONE, "--name", "管理员",
         "--password-stdin", "--customer", system.processes["customer"].address],
        input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, timeout=60, env=system.base_env)
    assert done.returncode == 0, done.stderr
    signed = httpx.post(f"{system.gateway_url}/v1/sessions", json={"login": ADMIN_PHONE, "password": ADMIN_PASSWORD})
    assert signed.status_code == 200, signed.text
    return signed.json()["tokens"]["access_token"]


def seed(system: System) -> Seeded:
    token = create_first_admin(system)
    api = Gateway(system, token)
    try:
        seeded = _seed(api)
    finally:
        api.http.close()
    seeded.token = token
    return seeded


def _seed(api: Gateway) -> Seeded:
    seeded = Seeded()
    mall = api("OrganizationService.CreateMall", {"request_id": "seed-mall", "name": "万象城"})
    seeded.mall_id = mall["mall"]["mall_id"]
    for n, (name, category) in enumerate((("星巴克", "餐饮"), ("优衣库", "服饰"))):
        store = api("OrganizationService.CreateStore", {"request_id": f"seed-store-{n}", "mall_id": seeded.mall_id,
                                                        "name": name, "category": category,
                                                        "brand": name})["store"]
        seeded.store_ids.append(store["store_id"])
    for number, name in LEVELS.items():
        api("LevelService.CreateLevel", {"request_id": f"seed-level-{number}", "level": {
            "number": number, "name": name, "discount_permille": 1000 - 50 * (number - 1),
            "upgrade_mode": "UPGRADE_MODE_MANUAL"}})
    template = api("LedgerService.CreateReasonTemplate", {"request_id": "seed-reason", "asset": "ASSET_POINTS",
                                                          "name": "消费补录"})
    seeded.reason_template_id = template["reason_template"]["reason_template_id"]
    for phone, name, gender in MEMBERS:
        member = api("MemberService.CreateMember", {"request_id": f"seed-{phone}", "phone": phone, "name": name,
                                                    "gender": gender, "registration_mall_id": seeded.mall_id})
        member_id = member["member"]["member_id"]
        seeded.members[phone] = member_id
        api("MemberService.OpenCard", {"request_id": f"seed-card-{phone}", "member_id": member_id,
                                       "mall_id": seeded.mall_id, "channel": "OPEN_CHANNEL_WECHAT"})
        wait_for_accounts(api, member_id)
    return seeded


def wait_for_accounts(api: Gateway, member_id: str, timeout: float = 15.0) -> None:
    """The ledger opens a member's accounts when the member-created event reaches it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, path, query, _ = build_request("LedgerService.GetBalances", {"member_id": member_id})
        answer = api.http.request(method, path, params=query)
        if answer.status_code == 200 and len(answer.json().get("accounts", [])) == 3:
            return
        time.sleep(0.1)
    raise AssertionError(f"the ledger opened no accounts for {member_id} within {timeout:.0f} s")


def record_order(api: Gateway, mall_id: str, store_id: str, member_id: str, number: str, channel: str, fen: int,
                 when: str, timeout: float = 15.0) -> dict[str, Any]:
    """An order as the POS sends it; the ledger takes it once the store's announcement has reached it."""
    request = {"request_id": f"order-{number}", "member_id": member_id, "mall_id": mall_id, "store_id": store_id,
               "channel": channel, "external_order_no": number, "amount": fen, "paid_amount": fen,
               "occur_time": when}
    method, path, query, body = build_request("LedgerService.RecordOrder", request)
    deadline = time.monotonic() + timeout
    while True:
        answer = api.http.request(method, path, params=query, json=body)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    return answer.json()["order"]

