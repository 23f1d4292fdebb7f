"""Signing in, the dashboard, the member list and a member's detail, as an operator uses them."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.xdist_group("console")]


def test_sign_in_then_dashboard(operator, seeded, gateway_api):
    page = operator.page
    operator.go("/members")
    expect(page).to_have_url(operator.base_url + "/sign-in")
    operator.photograph("sign-in")
    operator.allow(r"/console/session")  # the refused sign-in below answers 401 on purpose
    page.get_by_label("手机号").fill("13900000000")
    page.get_by_label("密码").fill("wrong-password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_have_text("手机号或密码不正确")
    operator.sign_in()
    stats = gateway_api("MemberService.GetMemberStatistics", {})["statistics"]  # other tests add members
    assert int(stats["total"]) >= 3 and int(stats["card_opened"]) >= 3
    expect(page.get_by_test_id("total")).to_have_text(f"{int(stats['total']):,}")
    expect(page.get_by_test_id("card-opened")).to_have_text(f"{int(stats['card_opened']):,}")
    operator.photograph("dashboard")


def test_member_list_search_and_open_a_member(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/members")
    expect(page.get_by_role("cell", name="王小明")).to_be_visible()
    operator.photograph("members")
    page.get_by_label("搜索").fill("1380000000")  # the seeded members' phones; other tests add others
    expect(page.get_by_test_id("member-total")).to_have_text("共 3 位会员")
    page.get_by_label("搜索").fill("13800000002")
    expect(page.get_by_test_id("member-total")).to_have_text("共 1 位会员")
    expect(page.get_by_role("cell", name="王小明")).to_have_count(0)
    page.get_by_role("cell", name="李晓红").click()
    expect(page.get_by_role("heading", name="会员详情")).to_be_visible()
    expect(page.get_by_test_id("card-number")).not_to_have_text("—")


def test_adjust_points_and_see_the_statement(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go(f"/members/{seeded.members['13800000001']}")
    expect(page.get_by_test_id("balance-ASSET_POINTS")).to_have_text("0")
    points_card = page.get_by_label("积分", exact=True)
    points_card.get_by_role("button", name="手动调整").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("变动值（积分）").fill("abc")
    dialog.get_by_role("button", name="确定").click()
    expect(dialog.get_by_text("请输入正确的数值")).to_be_visible()
    dialog.get_by_label("变动值（积分）").fill("120")
    dialog.get_by_role("button", name="确定").click()
    expect(dialog.get_by_text("reason_template_id", exact=False)).to_be_visible()
    dialog.get_by_label("变动原因").click()
    page.get_by_role("option", name="消费补录").click()
    dialog.get_by_label("变动说明（选填）").fill("补录 12 月小票")
    dialog.get_by_role("button", name="确定").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_test_id("balance-ASSET_POINTS")).to_have_text("120")
    statement = page.get_by_label("积分明细")
    expect(statement.get_by_role("cell", name="+120")).to_be_visible()
    expect(statement.get_by_role("cell", name="补录 12 月小票")).to_be_visible()
    operator.photograph("member-detail")


def test_change_a_level_and_download_the_record(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go(f"/members/{seeded.members['13800000003']}")
    expect(page.get_by_test_id("level")).to_have_text("无等级")
    page.get_by_role("button", name="变更等级").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("变更为").click()
    page.get_by_role("option", name="金卡会员").click()
    dialog.get_by_label("变更原因").fill("大客户")
    dialog.get_by_role("button", name="确定").click()
    expect(page.get_by_test_id("level")).to_have_text("金卡会员")
    expect(page.get_by_test_id("level-frozen")).to_have_text("是")
    page.get_by_role("tab", name="等级变更记录").click()
    records = page.get_by_label("等级变更记录")
    expect(records.get_by_role("cell", name="金卡会员")).to_be_visible()
    expect(records.get_by_role("cell", name="大客户")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="下载等级变更记录").click()
    text = download.value.path().read_text(encoding="utf-8-sig")
    assert "大客户" in text and len(text.strip().splitlines()) == 2, text
    operator.photograph("member-levels")
