"""HMA 2.0 compatibility: credentials per exchange and per API, in the order HMA 2.0's
``test_exchange_credentials.py`` drives them over HTTP (API credentials set before any
exchange exists, exchanges with and without their own, the fallback order, clearing, bad
payloads that must never be echoed).

Which credentials a fetch used is read off a loopback ThreatExchange: it accepts one token
and records the token of every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import ExchangeApiCredentialsRow, ExchangeRow
from hma_framework.testing import Tokens, run_jobs
from tests.fakes.threatexchange import APP_ID, FakeThreatExchange, Indicator, fake_threatexchange

TOKEN_A = f"{APP_ID}|fake-token-exchange-a"
TOKEN_B = f"{APP_ID}|fake-token-exchange-b"
TOKEN_API = f"{APP_ID}|fake-token-api-level"
API = "fb_threatexchange"


class Api:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = Tokens.header(token)

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.open(path, method=method, headers=self.headers, **kwargs)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    exchanges = attrs.evolve(settings.exchanges, http_timeout_seconds=1, http_retries=1)
    return attrs.evolve(settings, exchanges=exchanges)


@pytest.fixture
def api(client: Any, tokens: Tokens) -> Api:
    return Api(client, tokens.admin)


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange(page_size=10)) as fake:
        fake.add(Indicator("f" * 64, last_updated=1_700_000_000))
        yield fake


def create(api: Api, fake: FakeThreatExchange, name: str, credentials: Any = None) -> Any:
    body: dict[str, Any] = {
        "api": API,
        "bank": name,
        "api_json": {"privacy_group": fake.privacy_group, "base_url": fake.base_url},
    }
    if credentials is not None:
        body["credential_json"] = credentials
    return api("POST", "/c/exchanges", json=body)


def set_api_credentials(api: Api, credentials: Any) -> None:
    response = api("POST", f"/c/exchanges/api/{API}", json={"credential_json": credentials})
    assert response.status_code == 200, response.get_json()


def set_own(api: Api, name: str, credentials: Any) -> Any:
    return api("POST", f"/c/exchange/{name}/credentials", json={"credential_json": credentials})


def source(api: Api, name: str) -> str | None:
    response = api("GET", f"/c/exchange/{name}/credentials")
    assert response.status_code == 200
    found: str | None = response.get_json()["source"]
    return found


def token_used(api: Api, runtime: Runtime, fake: FakeThreatExchange, name: str) -> str | None:
    """Fetch ``name`` now; the token its requests carried, or None if it fetched nothing."""
    fake.requests.clear()
    assert api("POST", f"/exchanges/{name}/fetch").status_code == 202
    run_jobs(runtime, ["fetch"])
    tokens = {r["query"].get("access_token") for r in fake.requests}
    assert len(tokens) <= 1
    return tokens.pop() if tokens else None


def test_api_credentials_first_then_exchanges_with_and_without_their_own(
    api: Api, runtime: Runtime, fake: FakeThreatExchange
) -> None:
    set_api_credentials(api, {"api_token": TOKEN_API})  # before any exchange exists
    assert api("GET", f"/c/exchanges/api/{API}").get_json() == {
        "supports_authentification": True,
        "has_set_authentification": True,
    }
    assert create(api, fake, "EX_A", {"api_token": TOKEN_A}).status_code == 201
    assert create(api, fake, "EX_B", {"api_token": TOKEN_B}).status_code == 201
    assert create(api, fake, "EX_C").status_code == 201  # none of its own
    for name, expected in [("EX_A", TOKEN_A), ("EX_B", TOKEN_B), ("EX_C", TOKEN_API)]:
        fake.token = expected
        assert token_used(api, runtime, fake, name) == expected, name
        status = api("GET", f"/c/exchange/{name}/status").get_json()
        assert status["last_fetch_succeeded"] is True and status["fetched_items"] > 0
    assert source(api, "EX_A") == "exchange" and source(api, "EX_C") == "api"
    # Replacing the API's set leaves the exchanges' own alone.
    set_api_credentials(api, {"api_token": TOKEN_B})
    assert source(api, "EX_A") == "exchange"
    fake.token = TOKEN_A
    assert token_used(api, runtime, fake, "EX_A") == TOKEN_A


def test_fallback_order_and_unwinding(api: Api, runtime: Runtime, fake: FakeThreatExchange) -> None:
    assert create(api, fake, "EX_A").status_code == 201
    assert source(api, "EX_A") is None
    fake.token = TOKEN_A
    assert token_used(api, runtime, fake, "EX_A") is None  # nothing to fetch with
    failed = api("GET", "/c/exchange/EX_A/status").get_json()
    assert failed["last_fetch_succeeded"] is False
    assert "none set" in api("GET", "/exchanges/EX_A/status").get_json()["last_error"]

    set_api_credentials(api, {"api_token": TOKEN_API})
    assert source(api, "EX_A") == "api"
    fake.token = TOKEN_API
    assert token_used(api, runtime, fake, "EX_A") == TOKEN_API

    assert set_own(api, "EX_A", {"api_token": TOKEN_A}).status_code == 200
    assert source(api, "EX_A") == "exchange"
    fake.token = TOKEN_A
    assert token_used(api, runtime, fake, "EX_A") == TOKEN_A

    assert set_own(api, "EX_A", {}).status_code == 200  # unwind: back to the API's
    fake.token = TOKEN_API
    assert token_used(api, runtime, fake, "EX_A") == TOKEN_API
    set_api_credentials(api, {})
    assert source(api, "EX_A") is None
    assert api("GET", f"/c/exchanges/api/{API}").get_json()["has_set_authentification"] is False


def test_create_update_clear_delete(api: Api, runtime: Runtime, fake: FakeThreatExchange) -> None:
    assert create(api, fake, "EX_A", {"api_token": TOKEN_A}).status_code == 201
    shown = api("GET", "/c/exchange/EX_A").get_json()
    assert shown["name"] == "EX_A"
    assert shown["credential_status"] == {
        "supports_auth": True,
        "has_credentials": True,
        "source": "exchange",
    }
    updated = set_own(api, "EX_A", {"api_token": TOKEN_B})
    assert updated.status_code == 200
    assert updated.get_json() == {
        "supports_auth": True,
        "has_credentials": True,
        "source": "exchange",
    }
    cleared = set_own(api, "EX_A", None)
    assert cleared.status_code == 200
    assert cleared.get_json() == {"supports_auth": True, "has_credentials": False, "source": None}
    with runtime.store.reading() as session:
        row = session.query(ExchangeRow).filter_by(name="EX_A").one()
        assert row.credentials == {}

    assert set_own(api, "EX_A", {"api_token": TOKEN_A}).status_code == 200
    assert api("DELETE", "/c/exchange/EX_A").status_code == 200
    assert create(api, fake, "EX_A").status_code == 201
    assert source(api, "EX_A") is None  # the old credentials went with the old exchange
    assert api("GET", "/c/exchange/NO_SUCH/credentials").status_code == 404
    assert set_own(api, "NO_SUCH", {"api_token": TOKEN_A}).status_code == 404


def test_bad_credentials_are_refused_without_echo(
    api: Api, runtime: Runtime, fake: FakeThreatExchange
) -> None:
    secret = "fake-secret-must-not-echo"
    bad_payloads: list[Any] = [
        {"api_token": secret, "unexpected": secret},
        {secret: secret},
        {"region": secret},
        {"api_token": [secret]},
        {"api_token": ""},
        {"api_token": secret + "\x00"},
        {"api_token": secret * 1000},
        secret,
    ]
    for payload in bad_payloads:
        response = create(api, fake, "EX_BAD", payload)
        assert response.status_code == 400, payload
        assert secret not in response.get_data(as_text=True)
        assert api("GET", "/c/exchange/EX_BAD").status_code == 404
    assert create(api, fake, "EX_A").status_code == 201
    for payload in bad_payloads:
        response = set_own(api, "EX_A", payload)
        assert response.status_code == 400, payload
        assert secret not in response.get_data(as_text=True)
    assert source(api, "EX_A") is None

    extra = api(
        "POST",
        "/c/exchange/EX_A/credentials",
        json={"credential_json": {"api_token": TOKEN_A}, "other": secret},
    )
    assert extra.status_code == 400 and secret not in extra.get_data(as_text=True)
    assert api("POST", "/c/exchange/EX_A/credentials", json={}).status_code == 400
    refused = api(
        "POST",
        f"/c/exchanges/api/{API}",
        json={"credential_json": {"api_token": TOKEN_API, secret: secret}},
    )
    assert refused.status_code == 400 and secret not in refused.get_data(as_text=True)
    with runtime.store.reading() as session:
        assert session.query(ExchangeApiCredentialsRow).count() == 0

    # An API without credentials refuses them, and says it has none.
    local = {"api": "local_file", "bank": "EX_LOCAL", "api_json": {"path": "x.csv"}}
    with_creds = api("POST", "/c/exchanges", json={**local, "credential_json": {"k": secret}})
    assert with_creds.status_code == 400 and secret not in with_creds.get_data(as_text=True)
    assert api("GET", "/c/exchange/EX_LOCAL").status_code == 404


def test_credential_values_never_returned(
    api: Api, runtime: Runtime, fake: FakeThreatExchange
) -> None:
    set_api_credentials(api, {"api_token": TOKEN_API})
    assert create(api, fake, "EX_A", {"api_token": TOKEN_A}).status_code == 201
    assert create(api, fake, "EX_B").status_code == 201
    assert set_own(api, "EX_B", {"api_token": TOKEN_B}).status_code == 200
    fake.token = TOKEN_A
    token_used(api, runtime, fake, "EX_A")
    for path in (
        "/c/exchanges",
        "/c/exchange/EX_A",
        "/c/exchange/EX_B",
        "/c/exchange/EX_A/credentials",
        "/c/exchange/EX_B/credentials",
        "/c/exchange/EX_A/status",
        f"/c/exchanges/api/{API}",
        "/exchanges",
        "/exchanges/EX_A",
    ):
        response = api("GET", path)
        assert response.status_code == 200, path
        for token in (TOKEN_A, TOKEN_B, TOKEN_API):
            assert token.split("|")[1] not in response.get_data(as_text=True), path
    with runtime.store.reading() as session:
        stored = [row.credentials for row in session.query(ExchangeApiCredentialsRow)]
        stored += [row.credentials for row in session.query(ExchangeRow)]
    assert stored and all(set(c) == {"sealed"} for c in stored)  # encrypted at rest
    assert all(TOKEN_API not in str(c) and TOKEN_A not in str(c) for c in stored)
