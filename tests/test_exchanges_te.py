"""fb_threatexchange end to end against the loopback Graph API, driven by the real client."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hma_threatexchange.http import HttpPolicy
from hma_threatexchange.te import ThreatExchangeClient
from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI
from threatexchange.signal_type.url_md5 import UrlMD5Signal

from hma_framework.exchanges import fetching
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange


def pdq(i: int) -> str:
    return hashlib.sha256(f"pdq {i}".encode()).hexdigest()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Quick exchange retries for tests; one-second timeouts."""
    exchanges = attrs.evolve(settings.exchanges, http_timeout_seconds=1, http_retries=3)
    return attrs.evolve(settings, exchanges=exchanges)


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange(page_size=4)) as fake:
        yield fake


def create(client: Any, tokens: Tokens, fake: FakeThreatExchange, **extra: Any) -> Any:
    body = {
        "name": "te_csam",
        "api": "fb_threatexchange",
        "config": {"privacy_group": fake.privacy_group, "base_url": fake.base_url},
        "credentials": {"api_token": TOKEN},
        **extra,
    }
    return client.post("/exchanges", json=body, headers=tokens.header(tokens.admin))


def fetch_now(runtime: Runtime, client: Any, tokens: Tokens) -> dict[str, Any]:
    response = client.post("/exchanges/te_csam/fetch", headers=tokens.header(tokens.admin))
    assert response.status_code == 202, response.json
    run_jobs(runtime, ["fetch"])
    status = client.get("/exchanges/te_csam/status", headers=tokens.header(tokens.admin))
    assert status.status_code == 200
    result: dict[str, Any] = status.json
    return result


def lookup(client: Any, tokens: Tokens, value: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/lookup?signal_type=pdq&signal={value}", headers=tokens.header(tokens.read)
    )
    assert response.status_code == 200, response.json
    matches: list[dict[str, Any]] = response.json["matches"]
    return matches


def test_the_library_client_waits_forever_and_ours_times_out(fake: FakeThreatExchange) -> None:
    """The defect first: the library's get_json_from_url sets no timeout at all."""
    fake.add(Indicator(pdq(1)))
    fake.hang_seconds = 2.5
    url = f"{fake.base_url}/{fake.privacy_group}/threat_updates/"
    library = ThreatExchangeAPI(TOKEN, endpoint_override=fake.base_url)
    started = time.monotonic()
    library.get_json_from_url(url, {"access_token": TOKEN})
    assert time.monotonic() - started >= 2.5  # it waited for the whole hang

    ours = ThreatExchangeClient(TOKEN, endpoint=fake.base_url, policy=HttpPolicy(1, retries=0))
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        ours.get_json_from_url(url, {"access_token": TOKEN})
    assert time.monotonic() - started < 2.0
    assert TOKEN not in str(raised.value)


def test_a_multi_page_fetch_fills_the_bank_with_exchange_metadata(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeThreatExchange
) -> None:
    for i in range(10):
        fake.add(Indicator(pdq(i), last_updated=1_700_000_000 + i, tags=("csam", f"t{i}")))
    created = create(client, tokens, fake)
    assert created.status_code == 201, created.json
    assert created.json["bank"] == "TE_CSAM"
    assert created.json["credentials_set"] == ["api_token"]
    status = fetch_now(runtime, client, tokens)
    assert status["state"] == "idle" and status["up_to_date"] is True, status
    assert status["items_added"] == 10 and status["last_error"] is None
    assert status["checkpoint_time"] is not None
    pages = [r for r in fake.requests if r["path"].endswith("threat_updates/")]
    assert len(pages) == 3  # 10 records, 4 per page, followed through absolute next URLs
    matches = lookup(client, tokens, pdq(7))
    assert len(matches) == 1
    found = matches[0]
    assert found["bank"] == "TE_CSAM"
    assert found["exchange"]["name"] == "te_csam"
    assert found["exchange"]["opinions"][0]["descriptor_id"] == 10_008
    assert sorted(found["tags"]) == ["csam", "t7"]
    bank = client.get("/banks/TE_CSAM", headers=tokens.header(tokens.read)).json
    assert bank["exchange"] == "te_csam"


def test_a_withdrawn_record_is_removed_on_the_next_fetch_and_only_new_updates_are_read(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeThreatExchange
) -> None:
    for i in range(5):
        fake.add(Indicator(pdq(i), last_updated=1_700_000_000 + i))
    assert create(client, tokens, fake).status_code == 201
    assert fetch_now(runtime, client, tokens)["items_added"] == 5
    assert lookup(client, tokens, pdq(2))
    fake.withdraw(pdq(2), at=1_700_000_100)
    fake.requests.clear()
    status = fetch_now(runtime, client, tokens)
    assert status["items_deleted"] == 1 and status["items_added"] == 0, status
    assert fake.requests[0]["query"]["start_time"] == "1700000004"  # resumed, not refetched
    assert lookup(client, tokens, pdq(2)) == []
    assert lookup(client, tokens, pdq(3))


def test_503_then_recovery_and_a_hanging_server_fails_with_no_credential_shown(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeThreatExchange, caplog: Any
) -> None:
    fake.add(Indicator(pdq(1)))
    assert create(client, tokens, fake).status_code == 201
    fake.fail_next, fake.retry_after = 2, "1"
    started = time.monotonic()
    status = fetch_now(runtime, client, tokens)
    assert status["items_added"] == 1 and status["state"] == "idle", status
    assert time.monotonic() - started >= 2.0  # Retry-After: 1 was honoured twice
    fake.add(Indicator(pdq(2), last_updated=1_700_000_500))
    fake.hang_seconds = 3.0
    # Each attempt times out after 1 s (3 retries), where the library would wait 4 x 3 s.
    status = fetch_now(runtime, client, tokens)
    assert status["state"] == "failed", status
    assert "Timeout" in status["last_error"] or "timed out" in status["last_error"]
    everything = json.dumps(status) + caplog.text
    assert "fakeThreatExchangeTokenSecretValue42" not in everything


def test_malformed_and_unknown_records_are_skipped_and_counted(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeThreatExchange, caplog: Any
) -> None:
    fake.add(Indicator(pdq(1)))
    fake.add(Indicator("not-a-pdq-hash"))
    fake.add(Indicator("something", type="HASH_SOMETHING_NEW"))
    fake.add(Indicator("something else", type="HASH_SOMETHING_NEW"))
    assert create(client, tokens, fake).status_code == 201
    status = fetch_now(runtime, client, tokens)
    assert status["items_added"] == 1 and status["items_skipped"] == 3, status
    assert caplog.text.count("HASH_SOMETHING_NEW") == 1


def test_two_triggers_make_one_fetch(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeThreatExchange
) -> None:
    fake.add(Indicator(pdq(1)))
    assert create(client, tokens, fake).status_code == 201
    first = client.post("/exchanges/te_csam/fetch", headers=tokens.header(tokens.admin))
    second = client.post("/exchanges/te_csam/fetch", headers=tokens.header(tokens.admin))
    assert first.json["enqueued"] is True and second.json["enqueued"] is False
    run_jobs(runtime, ["fetch"])
    assert len(fake.requests) == 1
    # While a fetch holds the lease, a trigger (and a job already queued) does nothing.
    with runtime.store.reading() as session:
        from sqlalchemy import select

        from hma_framework.store.tables import ExchangeRow

        exchange_pk = session.scalar(select(ExchangeRow.id))
    lease = fetching.fetch_lock(runtime, exchange_pk)
    assert lease.acquire()
    try:
        assert fetching.trigger(runtime, exchange_pk) is False
        state = client.get("/exchanges/te_csam/status", headers=tokens.header(tokens.admin))
        assert state.json["state"] == "fetching"
    finally:
        lease.release()


def test_config_and_credentials_are_checked_and_credentials_never_shown(
    client: Any, tokens: Tokens, fake: FakeThreatExchange
) -> None:
    admin = tokens.header(tokens.admin)
    bad = create(client, tokens, fake, config={"privacy_group": "abc"})
    assert bad.status_code == 400 and "config.privacy_group" in bad.json["message"]
    missing = create(client, tokens, fake, config={})
    assert missing.status_code == 400 and "config.privacy_group" in missing.json["message"]
    extra = create(client, tokens, fake, config={"privacy_group": 1, "colour": "red"})
    assert extra.status_code == 400 and "config.colour" in extra.json["message"]
    unknown = client.post("/exchanges", json={"name": "x", "api": "nope"}, headers=admin)
    assert unknown.status_code == 400
    assert create(client, tokens, fake).status_code == 201
    assert create(client, tokens, fake).status_code == 409
    listed = client.get("/exchanges", headers=admin)
    patched = client.patch("/exchanges/te_csam", json={"enabled": False}, headers=admin)
    assert patched.status_code == 200 and patched.json["enabled"] is False
    apis = client.get("/exchanges/apis", headers=admin).json["apis"]
    te = next(a for a in apis if a["name"] == "fb_threatexchange")
    assert {"name": "privacy_group", "type": "integer", "required": True}.items() <= te[
        "config_fields"
    ][0].items()
    assert te["credential_fields"][0]["name"] == "api_token"
    assert {a["name"] for a in apis} >= {"fb_threatexchange", "local_file", "ncmec", "stop_ncii"}
    for response in (listed, patched):
        assert "fakeThreatExchangeTokenSecretValue42" not in response.get_data(as_text=True)
    assert client.get("/exchanges", headers=tokens.header(tokens.read)).status_code == 403
    assert client.delete("/exchanges/te_csam", headers=admin).status_code == 204
    assert client.get("/banks/TE_CSAM", headers=tokens.header(tokens.read)).status_code == 200
    assert client.get("/exchanges/te_csam", headers=admin).status_code == 404


def test_url_and_text_indicators_land_in_banks_and_lookup_matches_them(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeThreatExchange
) -> None:
    url = "https://bad.example/path?q=1"
    text = "a phrase that the collaboration has flagged"
    fake.add(Indicator(url, type="URI"))
    fake.add(Indicator(UrlMD5Signal.hash_from_str(url), type="HASH_URL_MD5"))
    fake.add(Indicator(text, type="TEXT_STRING"))
    assert create(client, tokens, fake).status_code == 201
    assert fetch_now(runtime, client, tokens)["items_added"] == 3
    read = tokens.header(tokens.read)
    by_url = client.post("/lookup", json={"content_type": "url", "content": url}, headers=read)
    assert by_url.status_code == 200, by_url.json
    assert sorted(m["signal_type"] for m in by_url.json["matches"]) == ["url", "url_md5"]
    by_text = client.post("/lookup", json={"content_type": "text", "content": text}, headers=read)
    assert [m["signal_type"] for m in by_text.json["matches"]] == ["raw_text"]
    other = client.post("/lookup", json={"content_type": "text", "content": "hello"}, headers=read)
    assert other.json["matches"] == []
    assert client.post("/lookup", json={"content_type": "text"}, headers=read).status_code == 400
