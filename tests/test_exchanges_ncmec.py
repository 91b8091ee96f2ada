"""ncmec: the time window the real client sends is UTC whatever the host's time zone."""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from hma_threatexchange.http import HttpPolicy
from hma_threatexchange.ncmec import NCMECClient, utc_timestamp
from threatexchange.exchanges.clients.ncmec import hash_api

from hma_framework.testing import run_jobs
from tests.fakes.ncmec import PASSWORD, USER, Entry, fake_ncmec

EMPTY_ENTRIES = (
    b"<?xml version='1.0'?><queryResult><images maxTimestamp='2024-01-01T00:00:00Z'/>"
    b"<paging><next></next></paging></queryResult>"
)


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def entries_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(EMPTY_ENTRIES)))
            self.end_headers()
            self.wfile.write(EMPTY_ENTRIES)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_library_labels_local_time_utc(new_york: None) -> None:
    """The defect first: midnight UTC on 1 Jan 1970 is sent as 19:00 the day before."""
    assert hash_api._date_format(0) == "1969-12-31T19:00:00Z"
    assert utc_timestamp(0) == "1970-01-01T00:00:00Z"


def test_the_client_sends_a_utc_window(
    new_york: None, entries_server: tuple[str, list[dict[str, str]]]
) -> None:
    base_url, seen = entries_server
    client = NCMECClient(
        "user",
        "password",
        hash_api.NCMECEnvironment.Industry,
        base_url=base_url,
        policy=HttpPolicy(timeout_seconds=2, retries=0),
    )
    client.get_entries(start_timestamp=1_700_000_000, end_timestamp=1_700_003_600)
    assert seen == [{"from": "2023-11-14T22:13:20Z", "to": "2023-11-14T23:13:20Z"}]


def test_an_ncmec_exchange_structures_its_environment(client: Any, tokens: Any) -> None:
    admin = tokens.header(tokens.admin)
    body = {
        "name": "ncmec",
        "api": "ncmec",
        "config": {
            "environment": hash_api.NCMECEnvironment.Industry.value,
            "only_esp_ids": [1, 2],
        },
        "credentials": {"user": "esp-user", "password": "esp-password-secret"},
    }
    created = client.post("/exchanges", json=body, headers=admin)
    assert created.status_code == 201, created.json
    assert created.json["config"]["environment"] == hash_api.NCMECEnvironment.Industry.value
    assert "esp-password-secret" not in created.get_data(as_text=True)
    body["name"], body["config"] = "other", {"environment": "https://elsewhere.example"}
    refused = client.post("/exchanges", json=body, headers=admin)
    assert refused.status_code == 400 and "config.environment" in refused.json["message"]


def test_ncmec_fetch_adds_entries_and_deleted_images_remove_them(
    runtime: Any, client: Any, tokens: Any, new_york: None
) -> None:
    admin, read = tokens.header(tokens.admin), tokens.header(tokens.read)
    now = int(time.time())
    first, second = hashlib.sha256(b"ncmec 1").hexdigest(), hashlib.sha256(b"ncmec 2").hexdigest()
    with fake_ncmec() as fake:
        fake.entries += [Entry("E1", now - 3600, pdq=first), Entry("E2", now - 60, pdq=second)]
        created = client.post(
            "/exchanges",
            json={
                "name": "ncmec",
                "api": "ncmec",
                "config": {
                    "environment": hash_api.NCMECEnvironment.Industry.value,
                    "base_url": fake.base_url,
                },
                "credentials": {"user": USER, "password": PASSWORD},
            },
            headers=admin,
        )
        assert created.status_code == 201, created.json
        client.post("/exchanges/ncmec/fetch", headers=admin)
        run_jobs(runtime, ["fetch"])
        status = client.get("/exchanges/ncmec/status", headers=admin).json
        assert status["items_added"] == 2 and status["state"] == "idle", status
        assert all(window[0].endswith("Z") for window in fake.windows)
        found = client.get(f"/lookup?signal_type=pdq&signal={first}", headers=read).json
        [match] = found["matches"]
        assert match["exchange"]["name"] == "ncmec"
        assert match["exchange"]["member_id"] == 42
        assert match["exchange"]["classification"] == "A1"

        fake.entries.append(Entry("E1", int(time.time()) - 4, deleted=True))
        time.sleep(1.5)  # the next window must reach past the tombstone
        client.post("/exchanges/ncmec/fetch", headers=admin)
        run_jobs(runtime, ["fetch"])
        status = client.get("/exchanges/ncmec/status", headers=admin).json
        assert status["items_deleted"] == 1, status
        assert (
            client.get(f"/lookup?signal_type=pdq&signal={first}", headers=read).json["matches"]
            == []
        )
        assert client.get(f"/lookup?signal_type=pdq&signal={second}", headers=read).json["matches"]
