"""Crowd packages: build one and watch the live size change, save it, see it ready, its members and download."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.xdist_group("console")]


def choose(page, scope, label: str, option: str) -> None:
    scope.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def test_build_a_package_with_a_live_size_and_see_its_members(operator, seeded):
    page = operator.page
    operator.sign_in()
    operator.go("/crowds")
    page.get_by_role("button", name="新建分类").click()
    page.get_by_role("dialog").get_by_label("分类名称").fill("优质会员")
    page.get_by_role("dialog").get_by_role("button", name="确定").click()
    expect(page.get_by_label("分类").get_by_text("优质会员")).to_be_visible()
    operator.photograph("crowds")
    page.get_by_role("button", name="新建人群包").click()
    operator.ready()
    size = page.get_by_test_id("live-size")
    first = page.get_by_label("条件组 1")
    choose(page, first, "添加条件", "注册商场")
    choose(page, first.get_by_label("注册商场", exact=True), "选择", "万象城")
    expect(size).to_have_text("3")
    choose(page, first, "添加条件", "性别")
    first.get_by_label("性别", exact=True).get_by_label("选择", exact=True).click()
    male = page.get_by_role("option", name="男", exact=True)
    started = time.perf_counter()
    male.click()
    expect(size).to_have_text("2")
    elapsed_ms = (time.perf_counter() - started) * 1000
    page.keyboard.press("Escape")
    print(f"live size updated {elapsed_ms:.0f} ms after the condition changed (goal <= 300 ms, 3 members)")
    page.get_by_role("button", name="添加条件组").click()
    second = page.get_by_label("条件组 2")
    page.get_by_label("组间关系 2").get_by_role("button", name="剔除").click()
    choose(page, second, "添加条件", "性别")
    choose(page, second.get_by_label("性别", exact=True), "选择", "男")
    expect(size).to_have_text("0")
    second.get_by_role("button", name="删除该组").click()
    expect(size).to_have_text("2")
    page.get_by_label("定向人群包名称").fill("万象城男会员")
    choose(page, page, "所属分类", "优质会员")
    operator.snapshot("crowd-builder")
    page.get_by_role("button", name="保存").click()
    operator.ready()
    packages = page.get_by_label("人群包列表")
    row = packages.get_by_role("row").filter(has_text="万象城男会员")
    expect(row.get_by_text("已更新")).to_be_visible(timeout=20_000)
    expect(row.get_by_role("cell", name="2", exact=True)).to_be_visible()
    row.get_by_role("button", name="详情").click()
    operator.ready()
    members = page.get_by_label("人群包会员")
    expect(members.get_by_role("cell", name="王小明")).to_be_visible()
    expect(members.get_by_role("cell", name="张伟")).to_be_visible()
    expect(members.get_by_role("cell", name="李晓红")).to_have_count(0)
    with page.expect_download() as download:
        page.get_by_role("button", name="下载会员数据").click()
    lines = download.value.path().read_text(encoding="utf-8-sig").strip().splitlines()
    assert len(lines) == 3, lines
    operator.photograph("crowd-members")
