"""Abnormal-member alerts (document 001) as an operator handles one: the alert list, an alert's detail with
its orders, adding the member to the whitelist from there, and the whitelist itself."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.seed import record_order, wait_for_accounts

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.xdist_group("console")]


def raised_alert(gateway_api, mall_id: str, member_id: str, timeout: float = 15.0) -> dict:
    """The alert the order raised (the alert service reads the order event as it arrives)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = gateway_api("AlertService.ListAlerts", {"filter": {"mall_id": mall_id}, "page_size": 100})
        mine = [a for a in alerts.get("alerts", []) if a["member_id"] == member_id]
        if mine:
            return mine[0]
        time.sleep(0.1)
    raise AssertionError(f"no alert for member {member_id} within {timeout:.0f} s")


def test_alert_detail_whitelist_and_back(operator, seeded, gateway_api):
    # Registered nowhere: the crowd test counts the seeded mall's registrations.
    member = gateway_api("MemberService.CreateMember", {"request_id": "alert-member", "phone": "13700000011",
                                                        "name": "赵大额"})
    member_id = member["member"]["member_id"]
    wait_for_accounts(gateway_api, member_id)
    gateway_api("AlertService.CreateAlertRule", {
        "request_id": "alert-rule-big", "mall_id": seeded.mall_id, "name": "千元大单",
        "scope": {"kind": "STORE_SCOPE_KIND_ALL"}, "single_order": {"enabled": True, "min_paid_amount": 100_000}})
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    order = record_order(gateway_api, seeded.mall_id, seeded.store_ids[1], member_id, "POS-ALERT-1",
                         "ORDER_CHANNEL_POS", 150_000, an_hour_ago)
    alert = raised_alert(gateway_api, seeded.mall_id, member_id)

    page = operator.page
    operator.sign_in()
    operator.go("/alerts")
    alerts = page.get_by_label("异常会员", exact=True)
    row = alerts.get_by_role("row").filter(has_text="千元大单")
    expect(row.get_by_role("cell", name=member_id, exact=True)).to_be_visible()
    expect(row.get_by_role("cell", name="待处理")).to_be_visible()
    operator.photograph("alerts-list")
    alerts.get_by_role("row").filter(has_text="千元大单").get_by_role("cell", name=member_id, exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("异常会员详情：千元大单")).to_be_visible()
    orders = dialog.get_by_label("相关订单")
    expect(orders.get_by_role("cell", name=order["order_id"], exact=True)).to_be_visible()
    expect(orders.get_by_role("cell", name="¥1,500.00")).to_be_visible()
    expect(orders.get_by_role("cell", name="优衣库")).to_be_visible()
    expect(dialog.get_by_role("link", name="查看会员详情")).to_have_attribute("href", f"/members/{member_id}")
    operator.snapshot("alert-detail")
    dialog.get_by_role("button", name="加入白名单").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(alerts.get_by_role("row").filter(has_text="千元大单").get_by_role("cell", name="已加入白名单")
           ).to_be_visible()
    assert gateway_api("AlertService.GetAlert", {"alert_id": alert["alert_id"]})["alert"]["state"] == (
        "ALERT_STATE_WHITELISTED")

    # The whitelist shows the member with the reason the alert gave; removing them takes them off.
    operator.go("/alerts")
    page.get_by_role("tab", name="白名单").click()
    whitelist = page.get_by_label("白名单", exact=True)
    entry = whitelist.get_by_role("row").filter(has=page.get_by_role("cell", name=member_id, exact=True))
    expect(entry.get_by_role("cell", name="预警处理：加入白名单")).to_be_visible()
    operator.snapshot("alerts-whitelist")
    entry.get_by_role("button", name="移出白名单").click()
    expect(whitelist.get_by_role("cell", name=member_id, exact=True)).to_have_count(0)
    listed = gateway_api("AlertService.ListWhitelistEntries", {"page_size": 1000}).get("entries", [])
    assert member_id not in [e["member_id"] for e in listed]
