"""HMA 2.0 compatibility: the exchange routes' exact answers (``/c/exchanges...``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


class Api:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = Tokens.header(token)

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    exchanges = attrs.evolve(settings.exchanges, http_timeout_seconds=1, http_retries=1)
    return attrs.evolve(settings, exchanges=exchanges)


@pytest.fixture
def api(client: Any, tokens: Tokens) -> Api:
    return Api(client, tokens.admin)


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange(page_size=4)) as fake:
        yield fake


def te_json(fake: FakeThreatExchange) -> dict[str, Any]:
    return {"privacy_group": fake.privacy_group, "base_url": fake.base_url}


def test_api_routes_answer_hma2_shapes(api: Api, fake: FakeThreatExchange) -> None:
    apis = api("GET", "/c/exchanges/apis")
    assert apis.status_code == 200
    assert "fb_threatexchange" in apis.get_json() and "local_file" in apis.get_json()
    assert apis.get_json() == sorted(apis.get_json())

    te = api("GET", "/c/exchanges/api/fb_threatexchange")
    assert te.get_json() == {"supports_authentification": True, "has_set_authentification": False}
    local = api("GET", "/c/exchanges/api/local_file")
    assert local.get_json() == {
        "supports_authentification": False,
        "has_set_authentification": False,
    }
    missing = api("GET", "/c/exchanges/api/nope")
    assert missing.status_code == 400
    assert missing.get_json() == {"message": "no such Exchange API 'nope'"}
    cleared_none = api("POST", "/c/exchanges/api/local_file", json={"credential_json": {}})
    assert cleared_none.status_code == 200
    refused = api("POST", "/c/exchanges/api/local_file", json={"credential_json": {"a": "b"}})
    assert refused.status_code == 400
    assert refused.get_json() == {"message": "credentials: local_file takes no credentials"}

    # API credentials may come before any exchange of the API (HMA 2.0 keeps them per API).
    early = api(
        "POST",
        "/c/exchanges/api/fb_threatexchange",
        json={"credential_json": {"api_token": TOKEN}},
    )
    assert early.status_code == 200
    assert early.get_json() == {"supports_authentification": True, "has_set_authentification": True}
    assert TOKEN not in early.get_data(as_text=True)
    untouched = api("POST", "/c/exchanges/api/fb_threatexchange", json={"other": 1})
    assert untouched.get_json()["has_set_authentification"] is True  # no credential_json: kept
    not_object = api(
        "POST", "/c/exchanges/api/fb_threatexchange", data="[1]", content_type="application/json"
    )
    assert not_object.status_code == 400
    assert not_object.get_json() == {"message": "this endpoint expects a json object payload"}

    created = api(
        "POST",
        "/c/exchanges",
        json={
            "bank": "TE_ONE",
            "api": "fb_threatexchange",
            "api_json": te_json(fake),
            "credential_json": {"api_token": TOKEN},
        },
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json() == {"message": "Created successfully"}
    # A second exchange of the API given no credentials uses the API's shared ones.
    second = api(
        "POST",
        "/c/exchanges",
        json={"bank": "TE_TWO", "api": "fb_threatexchange", "api_json": te_json(fake)},
    )
    assert second.status_code == 201, second.get_json()
    assert api("GET", "/c/exchange/TE_TWO").get_json()["credential_status"] == {
        "supports_auth": True,
        "has_credentials": True,
        "source": "api",
    }
    bad = api(
        "POST", "/c/exchanges/api/fb_threatexchange", json={"credential_json": {"token": "x"}}
    )
    assert bad.status_code == 400
    assert bad.get_json() == {"message": "credentials: unknown field; expected api_token"}
    replaced = api(
        "POST", "/c/exchanges/api/fb_threatexchange", json={"credential_json": {"api_token": "1|2"}}
    )
    assert replaced.status_code == 200
    assert "1|2" not in replaced.get_data(as_text=True)
    cleared = api("POST", "/c/exchanges/api/fb_threatexchange", json={"credential_json": {}})
    assert cleared.get_json() == {
        "supports_authentification": True,
        "has_set_authentification": False,
    }
    assert api("GET", "/c/exchange/TE_TWO/credentials").get_json() == {
        "supports_auth": True,
        "has_credentials": False,
        "source": None,
    }
    assert api("GET", "/c/exchange/TE_ONE/credentials").get_json()["source"] == "exchange"

    # The schema in HMA 2.0's vocabulary (what Coop builds its forms from), exactly.
    schema = api("GET", "/c/exchanges/api/fb_threatexchange/schema").get_json()
    assert schema == {
        "config_schema": {
            "fields": [
                {
                    "name": "privacy_group",
                    "type": "number",
                    "required": True,
                    "default": None,
                    "help": "ThreatPrivacyGroup ID for this collaboration",
                    "choices": None,
                }
            ]
        },
        "credentials_schema": {
            "fields": [
                {
                    "name": "api_token",
                    "type": "string",
                    "required": True,
                    "default": None,
                    "help": schema["credentials_schema"]["fields"][0]["help"],
                    "choices": None,
                }
            ]
        },
    }
    ncmec = api("GET", "/c/exchanges/api/ncmec/schema").get_json()["config_schema"]["fields"]
    assert [(f["name"], f["type"], f["required"], f["default"]) for f in ncmec] == [
        ("environment", "enum", True, None),
        ("only_esp_ids", "set_of_number", False, []),
    ]
    assert "https://report.cybertip.org/hashsharing" in ncmec[0]["choices"]
    local_schema = api("GET", "/c/exchanges/api/local_file/schema").get_json()
    assert local_schema["credentials_schema"] is None
    missing = api("GET", "/c/exchanges/api/nope/schema")
    assert missing.status_code == 404
    assert missing.get_json() == {"message": "Exchange API 'nope' not found"}


def test_create_refuses_what_hma2_refuses(api: Api, fake: FakeThreatExchange) -> None:
    def create(body: Any) -> tuple[int, Any]:
        response = api("POST", "/c/exchanges", json=body)
        return response.status_code, response.get_json()

    assert create({"api": "fb_threatexchange"}) == (400, {"message": "Field `bank` is required"})
    assert create({"bank": "lower", "api": "fb_threatexchange"}) == (
        400,
        {"message": "Field `bank` must match /^[A-Z0-9_]+$/"},
    )
    assert create({"bank": "B", "api": "fb_threatexchange", "api_json": []}) == (
        400,
        {"message": "Field `api_json` must be object"},
    )
    assert create({"bank": "B"}) == (400, {"message": "Field `api_type` is required"})
    assert create({"bank": "B", "api": "nope"}) == (
        400,
        {"message": "No such exchange type 'nope'"},
    )
    status, body = create(
        {
            "bank": "B",
            "api": "fb_threatexchange",
            "api_json": {},
            "credential_json": {"api_token": TOKEN},
        }
    )
    assert status == 400
    assert body["message"] == (
        "Failed to parse `api_json` - verify all fields are supplied. "
        "config.privacy_group: required field missing"
    )
    status, body = create(
        {
            "bank": "B",
            "api": "fb_threatexchange",
            "api_json": te_json(fake),
            "credential_json": "token",
        }
    )
    assert (status, body) == (400, {"message": "Field `credential_json` must be object"})
    # HMA 2.0 refuses a bank that exists; nothing half-made stays behind.
    assert api("POST", "/c/banks", json={"name": "TAKEN"}).status_code == 201
    status, body = create(
        {
            "bank": "TAKEN",
            "api": "fb_threatexchange",
            "api_json": te_json(fake),
            "credential_json": {"api_token": TOKEN},
        }
    )
    assert status == 409 and body == {"message": "a bank named 'TAKEN' already exists"}
    assert api("GET", "/c/exchanges").get_json() == []


@pytest.fixture
def host_not_in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A host zone far from UTC, so a stored time read as local time shows up as hours off."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_exchange_routes_answer_hma2_shapes(
    api: Api, runtime: Runtime, fake: FakeThreatExchange, host_not_in_utc: None
) -> None:
    for i in range(3):
        fake.add(Indicator(f"{i:x}" + PDQ[1:], last_updated=1_700_000_000 + i))
    body = {
        "bank": "TE_CSAM",
        "api": "fb_threatexchange",
        "api_json": {**te_json(fake), "enabled": False},
        "credential_json": {"api_token": TOKEN},
    }
    assert api("POST", "/c/exchanges", json=body).status_code == 201
    again = api("POST", "/c/exchanges", json=body)
    assert again.status_code == 409
    assert again.get_json() == {"message": "an exchange named 'TE_CSAM' already exists"}
    assert api("GET", "/c/exchanges").get_json() == ["TE_CSAM"]
    # The exchange-fed bank is a bank of both APIs.
    assert api("GET", "/c/bank/TE_CSAM").get_json() == {
        "name": "TE_CSAM",
        "matching_enabled_ratio": 1.0,
    }

    shown = api("GET", "/c/exchange/TE_CSAM")
    assert shown.status_code == 200
    assert shown.get_json() == {
        "name": "TE_CSAM",
        "api": "fb_threatexchange",
        "enabled": False,
        "privacy_group": fake.privacy_group,
        "credential_status": {
            "supports_auth": True,
            "has_credentials": True,
            "source": "exchange",
        },
    }
    assert TOKEN not in shown.get_data(as_text=True)
    missing = api("GET", "/c/exchange/NOPE")
    assert missing.status_code == 404
    assert missing.get_json() == {"message": "Exchange 'NOPE' not found"}
    assert api("GET", "/c/exchange/NOPE/status").status_code == 404
    assert api("PUT", "/c/exchange/NOPE", json={"enabled": True}).status_code == 404

    before = api("GET", "/c/exchange/TE_CSAM/status").get_json()
    assert before == {
        "last_fetch_time": 0,
        "checkpoint_time": 0,
        "success": True,
        "last_fetch_succeeded": None,
        "last_fetch_complete_ts": None,
        "running_fetch_start_ts": None,
        "checkpoint_ts": None,
        "up_to_date": False,
        "fetched_items": 0,
    }

    enabled = api("PUT", "/c/exchange/TE_CSAM", json={"enabled": "true"})
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True
    assert api("PUT", "/c/exchange/TE_CSAM", json={"enabled": "maybe"}).status_code == 400

    assert api("POST", "/exchanges/TE_CSAM/fetch").status_code == 202
    run_jobs(runtime, ["fetch"])
    after = api("GET", "/c/exchange/TE_CSAM/status").get_json()
    assert after["success"] is True and after["last_fetch_succeeded"] is True
    assert (
        after["last_fetch_time"] > 0 and after["last_fetch_complete_ts"] >= after["last_fetch_time"]
    )
    assert after["checkpoint_time"] == after["checkpoint_ts"] == 1_700_000_002
    assert abs(after["last_fetch_complete_ts"] - time.time()) < 120  # UTC, not host time
    assert after["fetched_items"] == 3 and after["up_to_date"] is True

    # Per-exchange credentials: set, then cleared (a 200: it then has none at all).
    creds = api(
        "POST", "/c/exchange/TE_CSAM/credentials", json={"credential_json": {"api_token": "9|9"}}
    )
    assert creds.status_code == 200
    assert creds.get_json() == {
        "supports_auth": True,
        "has_credentials": True,
        "source": "exchange",
    }
    assert "9|9" not in creds.get_data(as_text=True)
    cleared = api("POST", "/c/exchange/TE_CSAM/credentials", json={"credential_json": {}})
    assert cleared.status_code == 200
    assert cleared.get_json() == {"supports_auth": True, "has_credentials": False, "source": None}
    assert api("POST", "/c/exchange/TE_CSAM/credentials", json={}).status_code == 400

    # The exchange takes its bank along, and again is a 200.
    gone = api("DELETE", "/c/exchange/TE_CSAM")
    assert gone.status_code == 200 and gone.get_json() == {"message": "Exchange deleted"}
    assert api("GET", "/c/bank/TE_CSAM").status_code == 404
    assert api("GET", "/c/exchanges").get_json() == []
    assert api("DELETE", "/c/exchange/TE_CSAM").get_json() == {"message": "Exchange deleted"}


def test_deleting_an_exchange_fed_bank_deletes_its_exchange(
    api: Api, fake: FakeThreatExchange
) -> None:
    """Coop's main version deletes every bank with DELETE /c/bank and needs its 200."""
    body = {
        "bank": "TE_GONE",
        "api": "fb_threatexchange",
        "api_json": te_json(fake),
        "credential_json": {"api_token": TOKEN},
    }
    assert api("POST", "/c/exchanges", json=body).status_code == 201
    deleted = api("DELETE", "/c/bank/TE_GONE")
    assert deleted.status_code == 200 and deleted.get_json() == {"message": "Done"}
    assert api("GET", "/c/bank/TE_GONE").status_code == 404
    assert api("GET", "/c/exchange/TE_GONE").status_code == 404
    assert api("GET", "/exchanges").get_json() == {"exchanges": []}
    assert api("POST", "/c/exchanges", json=body).status_code == 201  # the name is free again


def test_exchanges_made_through_our_api_are_named_by_their_bank(
    api: Api, fake: FakeThreatExchange
) -> None:
    ours = api(
        "POST",
        "/exchanges",
        json={
            "name": "te_csam",
            "api": "fb_threatexchange",
            "config": te_json(fake),
            "credentials": {"api_token": TOKEN},
        },
    )
    assert ours.status_code == 201
    assert api("GET", "/c/exchanges").get_json() == ["TE_CSAM"]
    assert api("GET", "/c/exchange/TE_CSAM").get_json()["name"] == "TE_CSAM"
    assert api("GET", "/c/exchange/te_csam").get_json()["name"] == "TE_CSAM"


def test_exchange_routes_need_admin(client: Any, tokens: Tokens) -> None:
    read = Api(client, tokens.read)
    for method, path in (
        ("GET", "/c/exchanges"),
        ("GET", "/c/exchanges/apis"),
        ("GET", "/c/exchanges/api/local_file"),
        ("POST", "/c/exchanges"),
        ("GET", "/c/exchange/X/status"),
    ):
        assert read(method, path).status_code == 403, path
        assert client.open(path, method=method).status_code == 401, path


def test_exchange_shows_every_config_field_as_hma2_dumps_it(api: Api) -> None:
    """The Ruby gem reads ``only_esp_ids`` (an array of integers) and ``environment`` off an
    NCMEC exchange; HMA 2.0 dumps the whole config, defaults included."""
    environment = "https://report.cybertip.org/hashsharing"
    body = {
        "bank": "NCMEC_CSAM",
        "api": "ncmec",
        "api_json": {"environment": environment},
        "credential_json": {"user": "esp-user", "password": "esp-password-secret"},
    }
    assert api("POST", "/c/exchanges", json=body).status_code == 201
    shown = api("GET", "/c/exchange/NCMEC_CSAM")
    assert shown.get_json() == {
        "environment": environment,
        "only_esp_ids": [],
        "name": "NCMEC_CSAM",
        "api": "ncmec",
        "enabled": True,
        "credential_status": {"supports_auth": True, "has_credentials": True, "source": "exchange"},
    }
    assert "esp-password-secret" not in shown.get_data(as_text=True)
