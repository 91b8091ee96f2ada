"""The console's Matches page (filters, opinion buttons) and Exchanges page, on both databases.

Opinions go through the same service as ``POST /matches/<id>/opinion``: a real local-file
exchange takes them and a real worker writes them back. The Exchanges page fetches from the
loopback fake ThreatExchange and must never show its token.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from hma_framework.exchanges import fetching
from hma_framework.exchanges.configs import exchanges_of
from hma_framework.exchanges.opinions import opinions_of_match
from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens, run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange
from tests.test_actions_support import PDQ, bank_with, new_secret
from tests.test_console import csrf_of, page_token, sign_in


def match_rows(html: str) -> dict[str, str]:
    """Each match row's html by bank name."""
    rows = re.findall(r'<tr class="match" id="match-\d+">.*?</tr>', html, flags=re.S)
    return {re.search(r'/ui/banks/([^"?]+)"', row).group(1): row for row in rows}  # type: ignore[union-attr]


def match_id(row: str) -> int:
    return int(re.search(r'id="match-(\d+)"', row).group(1))  # type: ignore[union-attr]


@pytest.fixture
def two_matches(client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens) -> Any:
    """Content c-1 matched in FILES (a local-file exchange's bank) and in local (no exchange)."""
    root = runtime.settings.exchange_file_root
    root.mkdir(parents=True, exist_ok=True)
    (root / "list.txt").write_text(f"pdq {PDQ}\n")
    exchanges_of(runtime).create(name="files", api="local_file", config={"filename": "list.txt"})
    fetching.trigger_by_name(runtime, "files")
    run_jobs(worker_runtime, ["fetch"])
    bank_with(runtime, "local")
    sent = client.post(
        "/submit/hash/",
        json={
            "content_id": "c-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": PDQ,
        },
        headers=Tokens.header(tokens.submit),
    )
    assert sent.status_code < 300, sent.text
    run_jobs(worker_runtime)
    return root


def test_matches_are_filtered_by_bank_kind_and_day(
    client: Any, runtime: Runtime, tokens: Tokens, two_matches: Any
) -> None:
    sign_in(client, tokens.read)
    everything = client.get("/ui/matches").text
    assert set(match_rows(everything)) == {"FILES", "local"}
    assert set(match_rows(client.get("/ui/matches?bank=local").text)) == {"local"}
    assert set(match_rows(client.get("/ui/matches?kind=live").text)) == {"FILES", "local"}
    assert match_rows(client.get("/ui/matches?kind=retroactive").text) == {}
    today = dt.datetime.now(dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    assert len(match_rows(client.get(f"/ui/matches?from={today}").text)) == 2
    assert match_rows(client.get(f"/ui/matches?to={yesterday}").text) == {}
    assert len(match_rows(client.get(f"/ui/matches?from={yesterday}&to={today}").text)) == 2
    bad_day = client.get("/ui/matches?from=31/12/2025")
    assert bad_day.status_code == 400 and "YYYY-MM-DD" in bad_day.text
    # a key that may read but not submit sees who could be told, and no buttons
    rows = match_rows(everything)
    assert "no exchange to tell" in rows["local"]
    assert "<form" not in rows["FILES"] and "files" in rows["FILES"]


def test_opinion_buttons_write_back_through_the_service(
    client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, two_matches: Any
) -> None:
    analyst = runtime.api_keys.create("analyst", ["read", "submit"]).token
    sign_in(client, analyst)
    listing = client.get("/ui/matches?bank=FILES")
    rows = match_rows(listing.text)
    files_id, token = match_id(rows["FILES"]), csrf_of(listing.text)
    # local_file takes true_positive only: that is the one button offered
    assert re.findall(r'name="opinion" value="([a-z_]+)"', rows["FILES"]) == ["true_positive"]
    assert 'name="back" value="/ui/matches?bank=FILES"' in rows["FILES"]
    older = match_rows(client.get("/ui/matches?bank=FILES&before=999999").text)["FILES"]
    assert 'name="back" value="/ui/matches?bank=FILES&amp;before=999999"' in older
    url = f"/ui/matches/{files_id}/opinion"

    forged = client.post(url, data={"opinion": "true_positive"})
    assert forged.status_code == 403 and opinions_of_match(runtime, files_id) == []

    refused = client.post(url, data={"csrf_token": token, "opinion": "false_positive"})
    assert refused.status_code == 409
    assert "cannot take the opinion &#39;false_positive&#39;" in refused.text
    assert 'class="match"' in refused.text  # the list is still there around the message
    local_id = match_id(match_rows(client.get("/ui/matches").text)["local"])
    nobody = client.post(
        f"/ui/matches/{local_id}/opinion", data={"csrf_token": token, "opinion": "seen"}
    )
    assert nobody.status_code == 409 and "not filled by an exchange" in nobody.text
    unknown = client.post(url, data={"csrf_token": token, "opinion": "maybe"})
    assert unknown.status_code == 400 and "opinion must be one of" in unknown.text
    missing = client.post(
        "/ui/matches/999999/opinion", data={"csrf_token": token, "opinion": "seen"}
    )
    assert missing.status_code == 404
    assert opinions_of_match(runtime, files_id) == []

    told = client.post(
        url,
        data={"csrf_token": token, "opinion": "true_positive", "back": "/ui/matches?bank=FILES"},
    )
    assert told.status_code == 303, told.text
    assert told.headers["Location"] == f"/ui/matches?bank=FILES#match-{files_id}"
    [recorded] = opinions_of_match(runtime, files_id)
    assert (recorded["opinion"], recorded["source"]) == ("true_positive", "console:analyst")
    row = match_rows(client.get("/ui/matches?bank=FILES").text)["FILES"]
    assert 'class="write-back pending"' in row and "true positive: pending" in row
    run_jobs(worker_runtime, ["action"])
    row = match_rows(client.get("/ui/matches?bank=FILES").text)["FILES"]
    assert "true positive: sent" in row
    assert (two_matches / "list.txt").read_text().count(PDQ) == 2  # the exchange was told

    client.post("/ui/logout", data={"csrf_token": token})
    sign_in(client, tokens.read)
    no_scope = client.post(url, data={"csrf_token": page_token(client), "opinion": "seen"})
    assert no_scope.status_code == 403 and "submit" in no_scope.text
    assert len(opinions_of_match(runtime, files_id)) == 1


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange()) as fake:
        fake.add(Indicator(PDQ, last_updated=1_700_000_001))
        yield fake


def test_exchanges_page_shows_fetch_status_and_fetches_now_without_credentials(
    client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, fake: Any
) -> None:
    wrong = "1234567890|aWrongButSecretTokenValue77"
    for name, token in (("te_good", TOKEN), ("te_bad", wrong)):
        exchanges_of(runtime).create(
            name=name,
            api="fb_threatexchange",
            config={"privacy_group": fake.privacy_group, "base_url": fake.base_url},
            credentials={"api_token": token},
        )
    sign_in(client, tokens.read)
    assert client.get("/ui/exchanges").status_code == 403
    assert "Exchanges</a>" not in client.get("/ui/matches").text
    refused = client.post("/ui/exchanges/te_good/fetch", data={"csrf_token": page_token(client)})
    assert refused.status_code == 403 and runtime.queues["fetch"].count == 0
    client.post("/ui/logout", data={"csrf_token": page_token(client)})

    sign_in(client, tokens.admin)
    before = client.get("/ui/exchanges")
    assert before.status_code == 200 and before.text.count('class="exchange"') == 2
    assert "never" in before.text and "api_token" in before.text
    token = csrf_of(before.text)
    assert client.post("/ui/exchanges/te_good/fetch").status_code == 403  # no CSRF token
    assert runtime.queues["fetch"].count == 0
    for name in ("te_good", "te_bad"):
        fetched = client.post(f"/ui/exchanges/{name}/fetch", data={"csrf_token": token})
        assert fetched.status_code == 303
        assert "A fetch of" in client.get(fetched.headers["Location"]).text
    again = client.post("/ui/exchanges/te_good/fetch", data={"csrf_token": token})
    assert "already being fetched or queued" in client.get(again.headers["Location"]).text
    assert runtime.queues["fetch"].count == 2
    assert client.post("/ui/exchanges/nope/fetch", data={"csrf_token": token}).status_code == 404
    run_jobs(worker_runtime, ["fetch"])

    after = client.get("/ui/exchanges").text
    good = after.split('id="exchange-te_good"')[1].split("</tr>")[0]
    bad = after.split('id="exchange-te_bad"')[1].split("</tr>")[0]
    assert "added 1," in good and "up to date" in good and "(1 members)" in good
    assert "never" not in good  # both a last fetch and a last success
    assert "failed" in bad and 'class="message error"' in bad
    for secret in (TOKEN, TOKEN.partition("|")[2], wrong, wrong.partition("|")[2]):
        assert secret not in after


def test_review_pages_label_every_field_and_carry_no_inline_script(
    client: Any, runtime: Runtime, tokens: Tokens, two_matches: Any
) -> None:
    from hma_framework.actions.handlers import handlers_of

    handlers_of(runtime).create(
        name="hook",
        handler_type="webhook",
        config={"url": "https://example.org/h", "signing_secrets": [new_secret()]},
    )
    sign_in(client, tokens.admin)
    paths = ["/ui/matches", "/ui/deliveries", "/ui/exchanges", "/ui/actions"]
    paths += ["/ui/actions/handlers/hook"]
    for path in paths:
        page = client.get(path)
        assert page.status_code == 200, path
        fields = re.findall(r"<(?:input|select|textarea) id=\"([^\"]+)\"", page.text)
        assert fields or path == "/ui/exchanges", path
        for field_id in fields:
            assert f'for="{field_id}"' in page.text, (path, field_id)
        for script in re.findall(r"<script[^>]*>.*?</script>", page.text, flags=re.S):
            assert re.fullmatch(r'<script src="/ui/static/[a-z]+\.js" defer></script>', script)
        assert "onclick" not in page.text and "javascript:" not in page.text
    assert client.get("/ui/static/enhance.js").status_code == 200


def test_hostile_form_input_is_a_4xx_page_on_both_databases(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    nul_rule = '{"name": "n", "must_have": [{"label": "bank", "equals": "a\\u0000"}], "action": {}}'
    deep = "[" * 200 + "]" * 200
    answers = {
        "nul rule": client.post("/ui/actions/rules", data={"csrf_token": token, "rule": nul_rule}),
        "deep check": client.post(
            "/ui/actions/check", data={"csrf_token": token, "rule": deep, "match_id": "1"}
        ),
        "nul back": client.post(
            "/ui/matches/1/opinion",
            data={"csrf_token": token, "opinion": "seen", "back": "/ui/matches?bank=\x00"},
        ),
        "nul handler": client.post(
            "/ui/actions/handlers",
            data={"csrf_token": token, "name": "h\x00", "type": "webhook", "config": "{}"},
        ),
        "nul filter": client.get("/ui/matches?bank=%00"),
        "huge before": client.get("/ui/matches?before=" + "9" * 40),
    }
    for what, answer in answers.items():
        assert answer.status_code in (200, 400), (what, answer.status_code)
        # the app-wide guard on NUL in URLs answers before the console does, in JSON
        assert answer.mimetype == ("application/json" if what == "nul filter" else "text/html")
    assert "NUL" in answers["nul rule"].text and "nested more than" in answers["deep check"].text
