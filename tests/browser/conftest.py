"""Browser tests: headless Debian chromium (Playwright for Python) driving the console of a real system.

One system (NATS, the three services, the gateway with the console) runs for the whole
session; each test opens its own browser context at 1366x768, signs in like an operator and
fails on any browser console error, failed request or horizontal overflow. Each screen is
photographed in Chinese and English under test-artifacts/console/.

Without /usr/bin/chromium the tests are skipped, and the run ends with one line saying so;
under CI (CI=true) a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.supervisor import Ports, System
from tests.browser.seed import ADMIN_PASSWORD, ADMIN_PHONE

CHROMIUM = Path(os.environ.get("CROWDPACK_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
VIEWPORT = {"width": 1366, "height": 768}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the browser the console tests are skipped (tests/conftest.py says so at the end of the run);
    under CI (CI=true) they run and the chromium fixture fails them."""
    if CHROMIUM.exists() or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not found")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def console_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole system as processes, shared by every browser test of the session."""
    system = System(state_dir=tmp_path_factory.mktemp("console-system"), ports=Ports.free(),
                    env={"CROWDPACK_CUSTOMER_OUTBOX_POLL_S": "0.1", "CROWDPACK_LEDGER_OUTBOX_POLL_S": "0.1"})
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: CI installs Debian's chromium for the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Operator:
    """A person at the console: their page, and everything the browser complained about."""

    page: object
    base_url: str
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base_url + path)
        self.ready()

    def ready(self) -> None:
        """The page has drawn its heading (every console page has one)."""
        from playwright.sync_api import expect

        expect(self.page.get_by_role("heading", level=1)).to_be_visible(timeout=15_000)

    def sign_in(self, login: str = ADMIN_PHONE, password: str = ADMIN_PASSWORD) -> None:
        from playwright.sync_api import expect

        self.go("/sign-in")
        self.page.get_by_label("手机号").fill(login)
        self.page.get_by_label("密码").fill(password)
        self.page.get_by_role("button", name="登录").click()
        expect(self.page.get_by_role("heading", name="概览")).to_be_visible(timeout=15_000)

    def switch_language(self) -> None:
        with self.page.expect_navigation():
            self.page.locator("a[href^='/console/language/']").click()
        self.ready()

    def photograph(self, screen: str) -> None:
        """A screenshot of the current screen in Chinese and in English; checks overflow in both."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for lang in ("zh-CN", "en"):
            if lang == "en":
                self.switch_language()
            self.assert_no_overflow(f"{screen} ({lang})")
            self.page.screenshot(path=str(ARTIFACTS / f"{screen}.{lang}.png"), full_page=True)
        self.switch_language()

    def snapshot(self, screen: str, lang: str = "zh-CN") -> None:
        """A screenshot of a state a reload would lose (a wizard's later step), in the language shown."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.assert_no_overflow(screen)
        self.page.screenshot(path=str(ARTIFACTS / f"{screen}.{lang}.png"), full_page=True)

    def assert_no_overflow(self, where: str) -> None:
        widths = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{where}: the page scrolls sideways ({widths[0]} > {widths[1]} px)"

    def allow(self, pattern: str) -> None:
        """An error the test provokes on purpose (e.g. a refused sign-in)."""
        self.allowed.append(re.compile(pattern))

    def complaints(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call":
        item.stash[OUTCOME] = report
    return report


OUTCOME = pytest.StashKey[pytest.TestReport]()


def _left_behind(request) -> bool:
    """A static asset (a font, a script) the browser stopped fetching because the page it was for was left: the
    navigation cancels it (net::ERR_ABORTED), nothing failed."""
    return (request.method == "GET" and request.failure == "net::ERR_ABORTED"
            and "/_nicegui/" in request.url and "/static/" in request.url)


@pytest.fixture
def operator(request: pytest.FixtureRequest, chromium, console_system: System) -> Iterator[Operator]:
    context = chromium.new_context(viewport=VIEWPORT, locale="zh-CN", accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    person = Operator(page, console_system.gateway_url)
    page.on("console", lambda msg: msg.type == "error" and person.errors.append(
        f"console: {msg.text} ({msg.location.get('url', '')})"))
    page.on("pageerror", lambda exc: person.errors.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: None if _left_behind(req) else person.errors.append(
        f"request failed: {req.method} {req.url} {req.failure}"))
    page.on("response", lambda resp: resp.status >= 400 and person.errors.append(
        f"HTTP {resp.status}: {resp.request.method} {resp.url}"))
    try:
        yield person
        report = request.node.stash.get(OUTCOME, None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
        assert not person.complaints(), "the browser complained:\n" + "\n".join(person.complaints())
    finally:
        context.close()


@pytest.fixture(scope="session")
def seeded(console_system: System):
    from tests.browser.seed import seed

    return seed(console_system)


@pytest.fixture
def gateway_api(console_system: System, seeded) -> Iterator[object]:
    """The gateway's API as the first admin, to compare what a page shows with what the API answers."""
    from tests.browser.seed import Gateway

    api = Gateway(console_system, seeded.token)
    try:
        yield api
    finally:
        api.http.close()
