"""Signing in, the dashboard, the member list and a member's detail, as an operator uses them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.seed import record_order

RECEIPT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # a PNG's signature and some body
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
    # The API's FIELD_INVALID reads in Chinese beside the field it names, with the server's detail.
    expect(dialog.get_by_text("填写有误：is required: pick a reason template")).to_be_visible()
    dialog.get_by_label("变动原因").click()
    page.get_by_role("option", name="消费补录").click()
    dialog.get_by_label("变动说明（选填）").fill("补录 12 月小票")
    # The 变动凭证: a file that is no picture is refused beside the field; a receipt photo fills it in.
    dialog.locator("input[type=file]").set_input_files(files=[{
        "name": "假小票.png", "mimeType": "image/png", "buffer": b"not a receipt"}])
    expect(dialog.get_by_text("填写有误：must be a JPEG, PNG or PDF file")).to_be_visible()
    operator.allow(r"/_nicegui/.*/upload")  # NiceGUI's upload endpoint answers the refused file with an error
    dialog.locator("input[type=file]").set_input_files(files=[{
        "name": "小票.png", "mimeType": "image/png", "buffer": RECEIPT}])
    expect(dialog.get_by_test_id("voucher")).to_have_value(re.compile(r"^/v1/voucherFiles/\d+$"))
    dialog.get_by_role("button", name="确定").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_test_id("balance-ASSET_POINTS")).to_have_text("120")
    statement = page.get_by_label("积分明细")
    expect(statement.get_by_role("cell", name="+120")).to_be_visible()
    expect(statement.get_by_role("cell", name="补录 12 月小票")).to_be_visible()
    with page.expect_download() as download:
        statement.get_by_role("button", name="查看凭证").click()
    assert download.value.suggested_filename == "小票.png"
    assert download.value.path().read_bytes() == RECEIPT
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


def test_member_list_crowd_filter_sort_and_download(operator, seeded):
    """The crowd filter travels to POST /v1/members:search; the download carries it too."""
    page = operator.page
    operator.sign_in()
    operator.go("/members")
    page.get_by_label("搜索").fill("1380000000")
    expect(page.get_by_test_id("member-total")).to_have_text("共 3 位会员")
    page.get_by_text("人群筛选器").click()
    page.get_by_label("添加条件").click()
    page.get_by_role("option", name="性别", exact=True).click()
    condition = page.get_by_label("性别", exact=True).filter(has=page.get_by_label("选择"))
    condition.get_by_label("选择").click()
    page.get_by_role("option", name="男", exact=True).click()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("member-total")).to_have_text("共 2 位会员")
    table = page.get_by_label("会员列表")
    expect(table.get_by_role("cell", name="王小明")).to_be_visible()
    expect(table.get_by_role("cell", name="张伟")).to_be_visible()
    expect(table.get_by_role("cell", name="李晓红")).to_have_count(0)
    page.get_by_label("排序").click()
    page.get_by_role("option", name="积分余额").click()
    expect(page.get_by_test_id("member-total")).to_have_text("共 2 位会员")
    with page.expect_download() as download:
        page.get_by_role("button", name="下载会员数据").click()
    lines = download.value.path().read_text(encoding="utf-8-sig").strip().splitlines()
    assert len(lines) == 3 and not any("13800000002" in line for line in lines), lines
    operator.photograph("members-crowd-filter")


def test_a_members_orders_filtered_by_store_brand_channel_and_time(operator, seeded, gateway_api):
    member_id = seeded.members["13800000002"]
    record_order(gateway_api, seeded.mall_id, seeded.store_ids[0], member_id, "POS-0001", "ORDER_CHANNEL_POS",
                 3_800, "2026-11-03T04:00:00Z")
    record_order(gateway_api, seeded.mall_id, seeded.store_ids[1], member_id, "FP-0002", "ORDER_CHANNEL_FAST_POINTS",
                 29_900, "2026-11-20T06:30:00Z")
    page = operator.page
    operator.sign_in()
    operator.go(f"/members/{member_id}")
    page.get_by_role("tab", name="消费信息").click()
    orders = page.get_by_label("消费订单", exact=True)
    expect(orders.get_by_role("row")).to_have_count(3)  # the header and two orders, newest first
    expect(orders.get_by_role("row").nth(1)).to_contain_text("FP-0002")
    page.get_by_label("品牌").click()
    page.get_by_role("option", name="星巴克").click()
    expect(orders.get_by_role("row")).to_have_count(2)
    expect(orders.get_by_role("cell", name="POS-0001")).to_be_visible()
    expect(orders.get_by_role("cell", name="¥38.00").first).to_be_visible()
    page.get_by_label("品牌").click()
    page.get_by_role("option", name="全部").click()
    page.get_by_label("订单渠道").click()
    page.get_by_role("option", name="支付即积分").click()
    page.keyboard.press("Escape")
    expect(orders.get_by_role("row")).to_have_count(2)
    expect(orders.get_by_role("cell", name="FP-0002")).to_be_visible()
    page.get_by_label("订单渠道").click()
    page.get_by_role("option", name="支付即积分").click()
    page.keyboard.press("Escape")
    page.get_by_label("交易开始日期").fill("2026-11-01")
    page.get_by_label("交易结束日期").fill("2026-11-10")
    expect(orders.get_by_role("row")).to_have_count(2)
    expect(orders.get_by_role("cell", name="POS-0001")).to_be_visible()
    page.get_by_label("交易结束日期").fill("2026-13-40")
    expect(page.get_by_text("请输入日期，格式 YYYY-MM-DD")).to_be_visible()
    page.get_by_label("交易结束日期").fill("2026-11-30")
    expect(orders.get_by_role("row")).to_have_count(3)
    operator.photograph("member-orders")
