"""The dashboard in headless Chromium (Debian's chromium, driven by Playwright): sign in with
the token once, read the matches, filter, open an article; nothing from a feed runs as code.

Without chromium (or Playwright) the test is skipped with the reason, except in CI (CI=true),
where it fails: `.ci/run` installs chromium when it is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from monitor.store.db import Database
from tests.web.conftest import HTML_BODY, SCRIPT_TITLE, TOKEN, seed, serving

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _chromium() -> str:
    """The chromium binary's path; skips (fails in CI) when it or Playwright is missing."""
    found = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    reason = None
    if found is None:
        reason = "chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            reason = "Playwright is not installed (pip install playwright)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    assert found is not None
    return found


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'monitor.db'}")
    database.upgrade()
    return database


async def test_dashboard_in_chromium_escapes_filters_and_opens_an_article(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """In Chromium, a <script> title shows as text and runs nothing, the stylesheet applies
    under the CSP, the severity filter narrows the list, and an article's page lists its hits."""
    executable = _chromium()
    from playwright.async_api import async_playwright

    seed(sqlite_db)
    dialogs: list[str] = []
    problems: list[str] = []
    async with serving(sqlite_db) as site, async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=executable, headless=True)
        try:
            page = await browser.new_page()
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

            def console(message: Any) -> None:
                if message.type in ("error", "warning"):
                    problems.append(f"console {message.type}: {message.text}")

            page.on("console", console)
            await _read_the_matches(page, site.url)
            await page.screenshot(path=str(tmp_path / "matches.png"), full_page=True)
            await _filter_by_severity(page)
            await _open_an_article(page)
            await page.screenshot(path=str(tmp_path / "article.png"), full_page=True)
        finally:
            await browser.close()
    assert dialogs == []
    assert problems == []


async def _read_the_matches(page: Any, url: str) -> None:
    """Sign in with the token once in the URL (then a cookie, and a clean address) and check
    the list: every match, titles and snippets as text, hits marked, the stylesheet applied."""
    await page.goto(f"{url}/?token={TOKEN}")
    assert page.url == f"{url}/"
    assert await page.title() == "Matches · monitor"
    titles = await page.locator("a.article").all_inner_texts()
    assert len(titles) == 7
    assert SCRIPT_TITLE in titles
    assert await page.locator("script").count() == 0
    snippet = page.locator("li.match", has_text="broke out").locator(".snippet")
    assert await snippet.inner_text() == HTML_BODY
    assert await snippet.locator("mark").all_inner_texts() == ["riot"]
    assert await snippet.locator("b").count() == 0
    # The stylesheet loaded (same origin, with the cookie) and the CSP let it apply.
    background = await snippet.locator("mark").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")


async def _filter_by_severity(page: Any) -> None:
    await page.select_option("select[name=severity]", "critical")
    async with page.expect_navigation():
        await page.click("form.filters button[type=submit]")
    assert "severity=critical" in page.url
    badges = await page.locator("li.match .severity").all_inner_texts()
    assert [badge.lower() for badge in badges] == ["critical"] * 3
    assert await page.locator("select[name=severity]").input_value() == "critical"


async def _open_an_article(page: Any) -> None:
    async with page.expect_navigation():
        await page.locator("a.article", has_text="alert(1)").click()
    assert "/articles/" in page.url
    assert await page.locator("h1").inner_text() == SCRIPT_TITLE
    hits = page.locator("table.hits tr.hit")
    assert await hits.count() == 2
    assert sorted(await hits.locator("mark").all_inner_texts()) == ["Riot", "riot"]
    assert await page.locator(".field .text mark").all_inner_texts() == ["Riot", "riot"]
    original = page.locator("dl.facts a")
    assert await original.get_attribute("href") == "https://example.org/riot?a=1&b=2"
    assert await page.locator("script").count() == 0
