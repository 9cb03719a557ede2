"""Browser end-to-end: the real page in headless Chromium, every tab, with screenshots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import CHROMIUM_ARGS, chromium_path, screenshot_dir


@pytest.fixture(scope="module")
def page(app_server) -> Iterator:
    path = chromium_path()
    if path is None:
        pytest.fail("Chromium not found: install Debian's `chromium` package (.ci/run does) or set CHROMIUM_PATH")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.goto(app_server.local_url, wait_until="networkidle")
        yield pg
        context.close()
        browser.close()


def test_page_shows_every_tab_in_order(page) -> None:
    from demos import registered_tabs

    titles = [t.TITLE for t in registered_tabs()]
    tabs = page.get_by_role("tab")
    tabs.first.wait_for(timeout=30_000)
    shown = [t.strip() for t in tabs.all_inner_texts()]
    assert [t for t in shown if t in titles] == titles
    page.screenshot(path=str(screenshot_dir() / "home.png"), full_page=True)


def test_models_tab_lists_checkpoints(page) -> None:
    from weights import registry

    page.get_by_role("tab", name="Models").click()
    first = registry.all_checkpoints()[0].id
    page.get_by_text(first, exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot_dir() / "models.png"), full_page=True)
