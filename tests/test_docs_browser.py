"""``/docs`` in a real browser: the reference renders under its Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_console_browser import ARTIFACTS, browser

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with the console's tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def test_docs_render_every_operation_without_csp_violations(page: Any, live_server: str) -> None:
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{live_server}/docs")
    page.wait_for_selector("details.op")
    spec = page.evaluate("fetch('/openapi.json').then(r => r.json())")
    count = sum(len(methods) for methods in spec["paths"].values())
    assert page.locator("details.op").count() == count
    page.fill("#filter", "post /banks admin")
    visible = page.locator("details.op:not(.hidden)")
    assert 1 <= visible.count() < count
    visible.first.click()
    assert "Request body" in visible.first.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=False)
    assert not problems, problems  # a CSP refusal or a script error shows up here
