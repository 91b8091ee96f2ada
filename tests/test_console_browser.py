"""The console in a real browser: Debian's Chromium driven by Playwright, against a live server.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``.ci/run``
installs it). Without it, or without the ``playwright`` package, these tests skip and say
why. A screenshot of each page is saved under ``.artifacts/console/`` for reviewers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests

from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, make_photo, run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange
from tests.test_actions_support import Receiver, new_secret

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Media is retained here, so the Content page has a (veiled) preview to prove safe."""
    return attrs.evolve(settings, pipeline=attrs.evolve(settings.pipeline, retain_media=True))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def veil_filter(page: Any) -> str:
    return str(page.eval_on_selector("img.veiled", "img => getComputedStyle(img).filter"))


@pytest.fixture
def fake_te() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange()) as fake:
        yield fake


def pdq_of(runtime: Runtime, photo: bytes) -> str:
    from hma_framework.media_hashing import bytes_file, compute_signals

    with bytes_file(runtime, photo) as path:
        (signal,) = compute_signals(runtime, "photo", path, alternates=False)
    return str(signal.value)


def test_the_analyst_journey(
    page: Any,
    live_server: str,
    runtime: Runtime,
    tokens: Tokens,
    receiver: Receiver,
    fake_te: FakeThreatExchange,
) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # Sign in (the overview is asked for first, so the redirect back is exercised too).
    page.goto(f"{live_server}/ui/")
    assert page.url.startswith(f"{live_server}/ui/login")
    shot(page, "01-login")
    page.get_by_label("API key").fill(tokens.admin)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{live_server}/ui/"
    cookie = next(c for c in page.context.cookies() if c["name"] == "hma_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Create a bank, then add a member by uploading a photo.
    page.get_by_role("link", name="Banks").click()
    page.get_by_label("Name").fill("journey")
    page.get_by_role("button", name="Create bank").click()
    assert page.url.endswith("/ui/banks/journey")
    photo = make_photo(seed=11)
    page.get_by_label("Photo file").set_input_files(
        {"name": "member.jpg", "mimeType": "image/jpeg", "buffer": photo}
    )
    page.get_by_label("Photo tags (comma-separated)").fill("journey-tag")
    page.get_by_role("button", name="Upload and add").click()
    assert "journey-tag" in page.inner_text("table")
    shot(page, "02-bank")
    page.get_by_role("link", name="Banks").click()
    shot(page, "03-banks")

    # ThreatExchange shares the same photo; "fetch now" on the Exchanges page brings it in.
    fake_te.add(Indicator(pdq_of(runtime, photo), tags=("journey-te",)))
    created = requests.post(
        f"{live_server}/exchanges",
        json={
            "name": "te",
            "api": "fb_threatexchange",
            "config": {"privacy_group": fake_te.privacy_group, "base_url": fake_te.base_url},
            "credentials": {"api_token": TOKEN},
        },
        headers=Tokens.header(tokens.admin),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    page.get_by_role("link", name="Exchanges").click()
    assert "never" in page.inner_text("tr.exchange")
    page.get_by_role("button", name="Fetch te now").click()
    assert "A fetch of te was queued" in page.inner_text("main")
    run_jobs(runtime, ["fetch"])
    page.reload()
    assert "added 1," in page.inner_text("tr.exchange")
    assert TOKEN.partition("|")[2] not in page.content()
    shot(page, "03c-exchanges")

    # A webhook handler (its secret typed once, never shown) and a rule for every match.
    page.get_by_role("link", name="Rules and handlers").click()
    page.get_by_label("Name").fill("hook")
    page.get_by_label("Type").select_option("webhook")
    page.get_by_label("Config (JSON object)").fill(f'{{"url": "{receiver.url}/{{content_id}}"}}')
    secret = new_secret()
    page.get_by_label("Secret fields").fill(f'{{"signing_secrets": ["{secret}"]}}')
    page.get_by_role("button", name="Create handler").click()
    page.get_by_label("Rule (JSON").fill(
        '{"name": "every-match", "must_have": [], "action": {"handler": "hook"}}'
    )
    page.get_by_role("button", name="Create rule").click()
    assert page.locator("tr.rule").count() == 1 and page.locator("tr.handler").count() == 1
    assert secret not in page.content()
    shot(page, "03b-rules-and-handlers")

    # The same photo arrives through the API and a real worker matches it.
    import base64

    sent = requests.post(
        f"{live_server}/submit/bytes/",
        json={
            "content_id": "journey-1",
            "content_type": "photo",
            "content_bytes": base64.b64encode(photo).decode(),
        },
        headers=Tokens.header(tokens.submit),
        timeout=10,
    )
    assert sent.ok, sent.text
    run_jobs(runtime)

    page.get_by_role("link", name="Matches").click()
    rows = page.locator("tr.match")
    assert rows.count() == 2  # in our bank and in the exchange's
    assert all("journey-1" in text for text in rows.all_inner_texts())
    local = rows.filter(has=page.get_by_role("link", name="journey", exact=True))
    assert "no exchange to tell" in local.inner_text()
    shot(page, "04-matches")

    # The analyst disagrees with ThreatExchange: the row updates in place (no page load).
    te_row = rows.filter(has=page.get_by_role("link", name="TE", exact=True))
    page.evaluate("window.stayedOnThePage = true")
    te_row.get_by_role("button", name="False positive").click()
    te_row = page.locator("tr.match", has=page.get_by_role("link", name="TE", exact=True))
    te_row.locator("li.write-back").wait_for()
    assert "false positive: pending" in te_row.inner_text()
    assert page.evaluate("window.stayedOnThePage") is True
    run_jobs(runtime, ["action"])
    page.reload()
    te_row = page.locator("tr.match", has=page.get_by_role("link", name="TE", exact=True))
    assert "false positive: sent" in te_row.inner_text()
    assert [r["reactions"] for r in fake_te.reactions if "reactions" in r] == ["DISAGREE_WITH_TAGS"]
    shot(page, "04b-matches-opinion")

    page.get_by_role("link", name="Overview").click()
    assert page.inner_text('[data-count="matches-day"]') == "2"
    assert page.inner_text('[data-count="submissions-day"]') == "1"
    shot(page, "05-overview")

    # Would the rule fire? Checked on its own page against the match just found.
    page.get_by_role("link", name="Rules and handlers").click()
    page.get_by_role("link", name="Edit or check rule every-match").click()
    page.get_by_role("button", name="Would this rule fire?").click()
    assert "Would fire for match" in page.inner_text("#check-result")
    shot(page, "04c-rule-check")
    page.get_by_role("link", name="Rules and handlers").first.click()
    page.get_by_role("link", name="Edit handler hook").click()
    assert secret not in page.content()
    assert page.get_by_label("Enabled").is_checked()
    shot(page, "04d-handler")

    # The webhook was delivered, and the Deliveries page says so.
    assert len(receiver.received) == 1 and receiver.received[0].path == "/journey-1"
    page.get_by_role("link", name="Deliveries").click()
    delivered = page.locator("tr.delivery.succeeded")
    assert delivered.count() == 1 and "journey-1" in delivered.first.inner_text()
    shot(page, "05c-deliveries")
    delivered.first.get_by_role("link").first.click()
    assert page.locator("tr.attempt").count() == 1 and "200" in page.inner_text("tr.attempt")
    shot(page, "05b-delivery")

    # Content: the retained photo is veiled until its own checkbox is ticked.
    page.goto(f"{live_server}/ui/content?content_id=journey-1")
    page.wait_for_function("document.querySelector('img.veiled').complete")
    assert "blur" in veil_filter(page) and "grayscale" in veil_filter(page)
    shot(page, "06-content-veiled")
    page.get_by_label("Reveal this media").check()
    assert veil_filter(page) == "none"
    page.get_by_label("Reveal this media").uncheck()
    assert "blur" in veil_filter(page)

    # Lookup by the same photo finds the member.
    page.get_by_role("link", name="Lookup").click()
    page.get_by_label("Photo file").set_input_files(
        {"name": "q.jpg", "mimeType": "image/jpeg", "buffer": photo}
    )
    page.get_by_role("button", name="Look up the image").click()
    assert page.locator("tr.match").count() >= 1
    assert page.locator("img").count() == 0
    shot(page, "07-lookup")

    # On a phone the pages still work: the navigation wraps, tables scroll inside their box.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Banks").click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the Banks page is {width}px wide on a 390px phone"
    shot(page, "08-banks-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Sign out: the session is gone on the server, so the pages send us to sign in again.
    page.get_by_role("button", name="Sign out").click()
    assert page.url.startswith(f"{live_server}/ui/login")
    assert runtime.redis.keys("hma:console:session:*") == []
    page.goto(f"{live_server}/ui/matches")
    assert page.url.startswith(f"{live_server}/ui/login")
    assert not errors, errors  # no CSP violation or script error on any page


def test_no_page_shows_media_unveiled_without_a_click(
    page: Any, live_server: str, runtime: Runtime, tokens: Tokens
) -> None:
    """Every image on every console page is filtered until the analyst acts."""
    import base64

    for n in range(2):
        requests.post(
            f"{live_server}/submit/bytes/",
            json={
                "content_id": f"m-{n}",
                "content_type": "photo",
                "content_bytes": base64.b64encode(make_photo(seed=20 + n)).decode(),
            },
            headers=Tokens.header(tokens.submit),
            timeout=10,
        ).raise_for_status()
    run_jobs(runtime)
    page.goto(f"{live_server}/ui/login")
    page.get_by_label("API key").fill(tokens.admin)
    page.get_by_role("button", name="Sign in").click()
    paths = ["/ui/", "/ui/banks", "/ui/matches", "/ui/lookup", "/ui/content"]
    paths += [f"/ui/content?content_id=m-{n}" for n in range(2)]
    seen = 0
    for path in paths:
        page.goto(f"{live_server}{path}")
        filters = page.eval_on_selector_all(
            "img", "all => all.map(i => getComputedStyle(i).filter)"
        )
        for value in filters:
            assert "blur" in value and "grayscale" in value, (path, value)
        seen += len(filters)
    assert seen == 2  # the two content pages each have their one veiled preview
