"""Business customers (document 003): transferring a customer to another owner, with the record it leaves."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.xdist_group("console")]


def test_transfer_a_business_customer_to_a_salesperson(operator, seeded, gateway_api):
    gateway_api("OrganizationService.CreateStaff", {"request_id": "sales-li", "name": "销售小李",
                                                    "phone": "13600000021", "role": "STAFF_ROLE_SALES"})
    gateway_api("BusinessCustomerService.CreateBusinessCustomer", {
        "request_id": "biz-yonghui", "name": "永辉超市", "industry": "零售"})
    page = operator.page
    operator.sign_in()
    operator.go("/business-customers")
    customers = page.get_by_label("企业客户")
    customers.get_by_role("cell", name="永辉超市").click()
    detail = page.get_by_role("dialog").filter(has_text="永辉超市")
    expect(detail.get_by_label("转移记录").get_by_text("暂无数据")).to_be_visible()
    detail.get_by_role("button", name="转移负责人").click()
    transfer = page.get_by_role("dialog").filter(has_text="转移给")
    transfer.get_by_role("button", name="确定").click()  # nobody chosen: the API's reason reads in Chinese there
    expect(transfer.get_by_text("填写有误：is required")).to_be_visible()
    transfer.get_by_label("转移给").click()
    page.get_by_role("option", name="销售小李").click()
    transfer.get_by_label("原因").fill("区域调整")
    transfer.get_by_role("button", name="确定").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    row = customers.get_by_role("row").filter(has_text="永辉超市")
    expect(row.get_by_role("cell", name="销售小李")).to_be_visible()
    customers.get_by_role("cell", name="永辉超市").click()
    record = page.get_by_role("dialog").get_by_label("转移记录").get_by_role("row").filter(has_text="区域调整")
    expect(record.get_by_role("cell", name="销售小李")).to_be_visible()
    expect(record.get_by_role("cell", name="管理员").first).to_be_visible()
    operator.snapshot("business-transfer")
