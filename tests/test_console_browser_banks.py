"""The Overview, Banks and Lookup-compare pages in a real browser (Chromium via Playwright).

Reuses the browser fixtures of ``test_console_browser.py``; screenshots go to
``.artifacts/console/`` beside the journey's. Every form is driven through its label, as a
keyboard or screen-reader user would find it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import requests

from hma_framework.media_hashing import bytes_file, compute_signals
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.testing import Tokens, make_photo, run_jobs
from tests.http_fixtures import loopback_server, serve_bytes
from tests.test_console_browser import browser, page, shot

__all__ = ["browser", "page"]  # fixtures, imported so pytest finds them here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def far_apart(n: int) -> str:
    """A PDQ hash about 128 bits from every other: a match hits one member, not its neighbours."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def sign_in(page: Any, live_server: str, token: str) -> None:
    page.goto(f"{live_server}/ui/login")
    page.get_by_label("API key").fill(token)
    page.get_by_label("API key").press("Enter")  # the keyboard submits the form
    assert page.url == f"{live_server}/ui/"


def no_media_shown(page: Any) -> None:
    """Nothing on these pages may show an image: only hashes of what was uploaded."""
    assert page.locator("main img").count() == 0


def test_banks_overview_and_compare_in_a_browser(
    page: Any, live_server: str, runtime: Runtime, tokens: Tokens
) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, tokens.admin)

    # A bank, its settings edited from the keyboard.
    page.get_by_role("link", name="Banks").click()
    page.get_by_label("Name").fill("curated")
    page.get_by_role("button", name="Create bank").click()
    page.get_by_label("Description").fill("analyst-curated")
    page.get_by_label("Bank tags (comma-separated)").fill("csam, priority")
    page.get_by_label("pdq threshold").fill("16")
    page.get_by_role("button", name="Save settings").click()
    assert "pdq ≤ 16" in page.inner_text("main") and "csam, priority" in page.inner_text("main")

    # Import 60 members from an NDJSON file, one line invalid; then page and search them.
    lines = [
        json.dumps(
            {"signal_type": "pdq", "signal_value": far_apart(n), "tags": ["odd"] if n % 2 else []}
        )
        for n in range(1, 61)
    ]
    lines.insert(3, '{"signal_type": "pdq", "signal_value": "not-a-hash"}')
    page.get_by_label("CSV or NDJSON file").set_input_files(
        {
            "name": "members.ndjson",
            "mimeType": "application/x-ndjson",
            "buffer": "\n".join(lines).encode(),
        }
    )
    page.get_by_role("button", name="Import").click()
    assert "Imported 60 members (ndjson); 1 lines skipped" in page.inner_text("main")
    assert "line 4:" in page.inner_text(".import-errors")
    shot(page, "20-bank-import")
    assert BankQueries(runtime.store).bank("curated")["member_count"] == 60  # type: ignore[index]
    page.get_by_label("Find a member").fill("tag:odd")
    page.get_by_label("Find a member").press("Enter")
    assert page.locator("tbody tr").count() == 30
    page.get_by_label("Find a member").fill("")
    page.get_by_role("button", name="Search").click()
    assert page.locator("tbody tr").count() == 50
    page.get_by_role("link", name="Next page").click()
    assert page.locator("tbody tr").count() == 10
    shot(page, "21-bank-members-page-2")

    # Export as CSV: the file holds what was imported.
    page.get_by_role("link", name="First page").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    exported = open(download.value.path()).read().splitlines()  # noqa: SIM115
    assert exported[0] == "signal_type,signal_value,tags,notes,content_id" and len(exported) == 61

    # Add a member by URL: the server fetches it, hashes it, keeps only the hash.
    photo = make_photo(seed=21)
    with bytes_file(runtime, photo) as path:
        (signal,) = compute_signals(runtime, "photo", path, alternates=False)
    with loopback_server() as server:
        url = server.add("/member.jpg", serve_bytes(photo, content_type="image/jpeg"))
        page.get_by_label("Photo URL").fill(url)
        page.get_by_label("URL tags (comma-separated)").fill("from-url")
        page.get_by_role("button", name="Fetch and add").click()
    assert signal.value in page.inner_text("table") and "from-url" in page.inner_text("table")
    no_media_shown(page)
    shot(page, "22-bank-added-by-url")

    # Compare the photo with itself and its hash with another: side by side, no image shown.
    page.get_by_role("link", name="Lookup").click()
    page.get_by_label("Side A photo").set_input_files(
        {"name": "a.jpg", "mimeType": "image/jpeg", "buffer": photo}
    )
    page.get_by_label("or side B hash").fill(signal.value)
    page.get_by_role("button", name="Compare").click()
    compared = page.locator("tr.compared")
    assert compared.count() == 1 and compared.first.inner_text().split()[-2:] == ["0", "yes"]
    no_media_shown(page)
    shot(page, "23-lookup-compare")

    # A submission through the API matches an imported member; the Overview counts it.
    sent = requests.post(
        f"{live_server}/submit/hash/",
        json={
            "content_id": "seen-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": far_apart(7),
        },
        headers=Tokens.header(tokens.submit),
        timeout=10,
    )
    assert sent.ok, sent.text
    run_jobs(runtime)

    # The Overview: charts drawn as SVG, the bank's counts and rate, the index freshness.
    page.get_by_role("link", name="Overview").click()
    assert page.inner_text('[data-count="live-matches-day"]') == "1"
    assert page.locator('[data-chart="live-matches-day"] rect[data-count="1"]').count() == 1
    assert page.inner_text('tr.bank-rate[data-bank="curated"]').split() == [
        "curated",
        "100.00",
        "100.00",
    ]
    assert page.locator('[data-chart="submissions-day"] rect').count() == 24
    assert page.locator('[data-chart="actions-30 days"] rect').count() == 30
    assert page.get_by_role("img", name="live matches per hour, last day: 1 in all").count() == 1
    assert page.locator("#index-freshness").is_visible()
    no_media_shown(page)
    shot(page, "24-overview")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shot(page, "25-overview-phone")
    assert not errors, errors  # no CSP violation, no script error
