"""Customer settings, levels, groups with a batch move, tags, virtual customers, organisation and alerts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.xdist_group("console")]


def test_settings_levels_tags_and_virtual_customers(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/settings")
    review = page.get_by_label("客户是否需要审核")
    expect(review).to_have_attribute("aria-checked", "false")
    review.click()
    page.get_by_role("button", name="提交").click()
    expect(page.get_by_text("已保存")).to_be_visible()
    operator.go("/settings")
    expect(page.get_by_label("客户是否需要审核")).to_have_attribute("aria-checked", "true")
    operator.photograph("settings")
    page.get_by_label("客户是否需要审核").click()
    page.get_by_role("button", name="提交").click()
    expect(page.get_by_text("已保存")).to_be_visible()

    operator.go("/levels")
    expect(page.get_by_label("客户等级").get_by_role("cell", name="金卡会员")).to_be_visible()
    operator.photograph("levels")

    operator.go("/tags")
    page.get_by_label("标签名称").fill("高价值")
    page.get_by_role("button", name="添加标签").click()
    expect(page.get_by_label("客户标签").get_by_role("cell", name="高价值", exact=True)).to_be_visible()
    operator.photograph("tags")

    operator.go("/virtual-customers")
    page.get_by_label("虚拟客户名").fill("小美")
    page.get_by_label("手机号").fill("13600000001")
    page.get_by_role("button", name="添加虚拟客户").click()
    expect(page.get_by_label("虚拟客户").get_by_role("cell", name="小美")).to_be_visible()
    operator.photograph("virtual-customers")


def test_groups_move_customers_in_a_batch(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/groups")
    page.get_by_role("button", name="添加客户分组").click()
    page.get_by_role("dialog").get_by_label("分组名称").fill("华东客户")
    page.get_by_role("dialog").get_by_role("button", name="确定").click()
    expect(page.get_by_text("华东客户")).to_be_visible()
    members = page.get_by_label("分组客户")
    for name in ("王小明", "李晓红"):
        members.get_by_role("row").filter(has_text=name).get_by_role("checkbox").click()
    page.get_by_role("button", name="修改分组", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("目标分组").click()
    page.get_by_role("option", name="华东客户").click()
    dialog.get_by_role("button", name="确定").click()
    expect(page.get_by_role("listitem").filter(has_text="华东客户").get_by_text("2 位客户")).to_be_visible()
    page.get_by_role("listitem").filter(has_text="华东客户").click()
    expect(members.get_by_role("cell", name="王小明")).to_be_visible()
    expect(members.get_by_role("cell", name="张伟")).to_have_count(0)
    operator.photograph("groups")


def test_organisation_and_alerts(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/organisation")
    expect(page.get_by_label("商场").get_by_role("cell", name="万象城")).to_be_visible()
    operator.photograph("organisation")
    page.get_by_role("tab", name="调整原因模板").click()
    expect(page.get_by_role("cell", name="消费补录")).to_be_visible()
    page.get_by_role("button", name="添加原因模板").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("原因").fill("活动补偿")
    dialog.get_by_role("button", name="确定").click()
    expect(page.get_by_role("cell", name="活动补偿")).to_be_visible()
    operator.go("/alerts")
    operator.photograph("alerts")


def test_business_customer_with_a_primary_contact(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/business-customers")
    page.get_by_role("button", name="创建客户").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("客户名称").fill("华润万家")
    dialog.get_by_label("行业").fill("零售")
    dialog.get_by_label("负责人").click()
    page.get_by_role("option", name="管理员").click()
    dialog.get_by_role("button", name="确定").click()
    customers = page.get_by_label("企业客户")
    expect(customers.get_by_role("cell", name="华润万家")).to_be_visible()
    operator.photograph("business-customers")
    customers.get_by_role("cell", name="华润万家").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("姓名").fill("陈经理")
    dialog.get_by_label("手机").fill("13500000001")
    dialog.get_by_role("checkbox", name="主联系人").click()
    dialog.get_by_role("button", name="添加联系人").click()
    contacts = dialog.get_by_label("联系人", exact=True)
    expect(contacts.get_by_role("cell", name="陈经理")).to_be_visible()
    expect(contacts.get_by_role("row").filter(has_text="陈经理").get_by_text("主联系人")).to_be_visible()


def test_create_an_alert_rule(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/alerts")
    page.get_by_role("tab", name="预警规则").click()
    page.get_by_role("button", name="创建规则").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("规则名称").fill("大额单笔")
    dialog.get_by_role("checkbox", name="单笔异常").click()
    dialog.get_by_label("实付金额 ≥（元）").first.fill("5000")
    dialog.get_by_role("button", name="确定").click()
    rules = page.get_by_label("预警规则")
    row = rules.get_by_role("row").filter(has_text="大额单笔")
    expect(row.get_by_text("单笔实付 ≥ ¥5,000.00")).to_be_visible()
    expect(row.get_by_text("所有门店")).to_be_visible()
