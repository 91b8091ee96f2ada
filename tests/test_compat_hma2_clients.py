"""HMA 2.0's clients, replayed: the call sequences, encodings and field reads of ROOST's Coop
(``server/services/hmaService/index.ts``) and FetLife's Ruby gem
(``hasher_matcher_actioner_api``), sent over real sockets to a live server.

Each helper below mirrors one client method: what it sends, and which fields of the answer it
reads. A change that would break one of those clients fails here.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import urllib.parse
from typing import Any

import attrs
import pytest

from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens, make_photo, run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange
from tests.http_fixtures import loopback_server, serve_bytes


@attrs.frozen
class Reply:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


def multipart(fields: list[tuple[str, str | None, str | None, bytes]]) -> tuple[str, bytes]:
    """(name, filename or None, part content type or None, bytes) -> (content type, body)."""
    boundary = secrets.token_hex(12)
    chunks = []
    for name, filename, part_type, data in fields:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if part_type:
            head += f"Content-Type: {part_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


class Http:
    """Requests exactly as written: the path is not normalized (``//c/banks`` stays)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname or "", parsed.port or 80
        self.prefix = parsed.path
        self.headers = headers

    def __call__(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(
                method, self.prefix + path, body=body, headers={**self.headers, **(headers or {})}
            )
            response = connection.getresponse()
            return Reply(response.status, response.read())
        finally:
            connection.close()


class CoopClient:
    """Coop's HmaService: its base URL ends in '/', so every path starts with '//'."""

    def __init__(self, http: Http) -> None:
        self.http = http  # Http built on "http://host:port/" -> paths "/" + "/c/..."

    def _json(self, method: str, path: str, body: Any) -> Reply:
        return self.http(
            method, "/" + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )

    def create_bank(self, hma_name: str, enabled_ratio: float) -> Reply:
        return self._json(
            "POST", "/c/banks", {"name": hma_name, "enabled_ratio": str(enabled_ratio)}
        )

    def update_ratio(self, hma_name: str, enabled_ratio: float) -> Reply:
        return self._json("PUT", f"/c/bank/{hma_name}", {"enabled_ratio": enabled_ratio})

    def bank_exists(self, hma_name: str) -> bool:
        reply = self.http(
            "GET", f"//c/bank/{hma_name}", headers={"Content-Type": "application/json"}
        )
        return reply.status != 404

    def delete_bank(self, hma_name: str) -> Reply:
        return self.http("DELETE", f"//c/bank/{hma_name}")

    def add_file(
        self, bank: str, photo: bytes, content_id: str, uri: str, note: str
    ) -> dict[str, Any]:
        # undici's FormData names a Blob "blob"; metadata.json is a JSON string field.
        content_type, body = multipart(
            [
                ("photo", "blob", "application/octet-stream", photo),
                ("content_id", None, None, content_id.encode()),
                ("content_uri", None, None, uri.encode()),
                ("metadata", None, None, json.dumps({"source": "coop"}).encode()),
                ("note", None, None, note.encode()),
            ]
        )
        reply = self.http("POST", f"//c/bank/{bank}/content", body, {"Content-Type": content_type})
        assert reply.ok, reply
        found: dict[str, Any] = reply.json()
        return {"id": found["id"], "signals": found["signals"]}

    def add_url(self, bank: str, url: str, content_id: str, note: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"url": url})
        reply = self._json(
            "POST",
            f"/c/bank/{bank}/content?{query}",
            {"metadata": {"content_id": content_id}, "note": note},
        )
        assert reply.ok, reply
        found: dict[str, Any] = reply.json()
        return found

    def hash_url(self, url: str) -> dict[str, str]:
        reply = self.http("GET", "//h/hash?" + urllib.parse.urlencode({"url": url}))
        assert reply.ok, reply
        found: dict[str, str] = reply.json()
        return found

    def matched_banks(self, bank_ids: list[str], signal_type: str, signal: str) -> list[str]:
        query = urllib.parse.urlencode({"signal_type": signal_type, "signal": signal})
        reply = self.http("GET", f"//m/lookup?{query}")
        assert reply.ok, reply
        matches = reply.json()
        return [b for b in bank_ids if matches.get(b) and len(matches[b]) > 0]

    # --- exchanges (getExchangeApis, getExchangeApiSchema, createExchange, ...) ------------

    def exchange_apis(self) -> list[dict[str, Any]]:
        reply = self.http("GET", "//c/exchanges/apis")
        assert reply.ok, reply
        infos = []
        for name in reply.json():
            config = self.http("GET", "//c/exchanges/api/" + urllib.parse.quote(name, safe=""))
            supports = config.json()["supports_authentification"] if config.ok else False
            infos.append({"name": name, "supports_auth": supports})
        return infos

    def exchange_api_schema(self, api: str) -> dict[str, Any]:
        reply = self.http("GET", f"//c/exchanges/api/{urllib.parse.quote(api, safe='')}/schema")
        assert reply.ok, reply
        schema: dict[str, Any] = reply.json()
        return schema

    def create_exchange(
        self, bank: str, api: str, api_json: dict[str, Any], credentials: dict[str, Any] | None
    ) -> Reply:
        body: dict[str, Any] = {"bank": bank, "api": api, "api_json": api_json}
        if credentials:
            body["credential_json"] = credentials
        return self._json("POST", "/c/exchanges", body)

    def set_exchange_credentials(self, hma_name: str, credentials: dict[str, Any]) -> Reply:
        path = f"/c/exchange/{urllib.parse.quote(hma_name, safe='')}/credentials"
        return self._json("POST", path, {"credential_json": credentials})

    def exchange_for_bank(self, hma_name: str) -> dict[str, Any] | None:
        name = urllib.parse.quote(hma_name, safe="")
        reply = self.http("GET", f"//c/exchange/{name}")
        if reply.status == 404:
            return None
        assert reply.ok, reply
        body = reply.json()
        info: dict[str, Any] = {
            "api": str(body.get("api") or ""),
            "enabled": bool(body.get("enabled")),
            "has_auth": body["credential_status"]["has_credentials"],
            "has_own_credentials": body["credential_status"]["has_own_credentials"],
        }
        status = self.http("GET", f"//c/exchange/{name}/status")
        if status.ok:
            fetch = status.json()
            info["last_fetch_succeeded"] = fetch["last_fetch_succeeded"]
            info["up_to_date"] = fetch["up_to_date"]
            info["fetched_items"] = fetch["fetched_items"]
            info["is_fetching"] = fetch["running_fetch_start_ts"] is not None
            info["last_fetch_complete_ts"] = fetch["last_fetch_complete_ts"]
        return info


class RubyClient:
    """FetLife's gem: Faraday with JSON requests, flat-encoded multipart, symbolized reads."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        reply = self.http("GET", path + "?" + urllib.parse.urlencode(params))
        return self._handle(reply)

    def _handle(self, reply: Reply) -> Any:
        if reply.ok:
            return reply.json()
        if reply.status == 503 and reply.body == b"INDEX-STALE":
            return reply.body.decode()
        message = reply.json().get("message") if reply.body.startswith(b"{") else ""
        if reply.status == 403 and "already exists" in (message or ""):
            raise FileExistsError(message)
        if reply.status == 404:
            raise LookupError("Resource not found")
        raise RuntimeError(f"{reply.status}: {message}")

    def server_ready(self) -> bool:
        reply = self.http("GET", "/status")
        return reply.status == 200 and reply.body.decode() == "I-AM-ALIVE"

    def create_bank(self, name: str) -> dict[str, Any]:
        body = {"name": name, "enabled": "true", "matching_enabled_ratio": 1.0}
        reply = self.http(
            "POST", "/c/banks", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        bank = self._handle(reply)
        ratio = float(bank["matching_enabled_ratio"])
        assert 0.0 <= ratio <= 1.0
        return {
            "name": str(bank["name"]),
            "matching_enabled_ratio": ratio,
            "enabled": bank.get("enabled", True),
        }

    def bank_exists(self, name: str) -> bool:
        try:
            self._get(f"/c/bank/{name}", {})
        except LookupError:
            return False
        return True

    def add_file_to_bank(self, bank: str, photo: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
        content_type, body = multipart(
            [
                ("photo", "image-in-hash-db.jpg", "image/jpeg", photo),
                ("metadata", None, None, json.dumps(metadata).encode()),
            ]
        )
        reply = self.http("POST", f"/c/bank/{bank}/content", body, {"Content-Type": content_type})
        result = self._handle(reply)
        return {"id": int(result["id"]), "signals": dict(result["signals"])}

    def add_url_to_bank(self, bank: str, url: str, metadata: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode(
            {"url": url, "content_type": "photo", "metadata": json.dumps(metadata)}
        )
        result = self._handle(self.http("POST", f"/c/bank/{bank}/content?{query}"))
        return {"id": int(result["id"]), "signals": dict(result["signals"])}

    def hash_file(self, photo: bytes) -> dict[str, str]:
        content_type, body = multipart([("photo", None, "image/jpeg", photo)])
        found: dict[str, str] = self._handle(
            self.http("POST", "/h/hash", body, {"Content-Type": content_type})
        )
        return found

    def raw_lookup(self, signal: str, include_distance: bool) -> list[Any]:
        params = {
            "signal": signal,
            "signal_type": "pdq",
            "include_distance": str(include_distance).lower(),
        }
        matches = self._get("/m/raw_lookup", params)["matches"]
        if include_distance:
            return [(int(m["bank_content_id"]), int(m["distance"])) for m in matches]
        assert all(isinstance(m, int) for m in matches)
        return list(matches)

    def lookup_signal(self, signal: str) -> list[tuple[str, str, int, int]]:
        by_bank = self._get("/m/lookup", {"signal": signal, "signal_type": "pdq"})
        return [
            ("pdq", bank, int(m["bank_content_id"]), int(m["distance"]))
            for bank, ms in by_bank.items()
            for m in ms
        ]

    def lookup_url(self, url: str) -> list[tuple[str, str, int, int]]:
        nested = self._get("/m/lookup", {"url": url, "content_type": "photo", "types": "pdq"})
        return [
            (st, bank, int(m["bank_content_id"]), int(m["distance"]))
            for st, by_bank in nested.items()
            for bank, ms in by_bank.items()
            for m in ms
        ]

    def lookup_file(self, photo: bytes) -> list[tuple[str, str, int, int]]:
        content_type, body = multipart([("photo", "upload.jpg", "image/jpeg", photo)])
        nested = self._handle(self.http("POST", "/m/lookup", body, {"Content-Type": content_type}))
        return [
            (st, bank, int(m["bank_content_id"]), int(m["distance"]))
            for st, by_bank in nested.items()
            for bank, ms in by_bank.items()
            for m in ms
        ]


@pytest.fixture
def base(live_server: str, runtime: Runtime, tokens: Tokens) -> tuple[str, dict[str, str]]:
    return live_server, Tokens.header(tokens.admin)


def test_coop_sequence(base: tuple[str, dict[str, str]]) -> None:
    coop = CoopClient(Http(base[0] + "/", base[1]))
    coop.http.prefix = ""  # the base URL's trailing "/" is the first of the two slashes
    photo, other = make_photo(seed=21), make_photo(seed=22)
    assert coop.create_bank("COOP_ORG1_NUDITY", 1.0).ok
    assert coop.bank_exists("COOP_ORG1_NUDITY") and not coop.bank_exists("COOP_ORG1_NONE")
    assert coop.update_ratio("COOP_ORG1_NUDITY", 1.0).ok
    added = coop.add_file("COOP_ORG1_NUDITY", photo, "item-1", "https://x.test/1.jpg", "n" * 255)
    assert isinstance(added["id"], int) and set(added["signals"]) == {"pdq"}
    stored = coop.http("GET", f"//c/bank/COOP_ORG1_NUDITY/content/{added['id']}").json()
    assert stored["original_media_uri"] == "https://x.test/1.jpg"
    with loopback_server() as server:
        url = server.add("/o.jpg", serve_bytes(other, content_type="image/jpeg"))
        by_url = coop.add_url("COOP_ORG1_NUDITY", url, "item-2", "by url")
        hashed = coop.hash_url(url)
    assert hashed == by_url["signals"]
    banks = ["COOP_ORG1_NUDITY", "COOP_ORG1_OTHER"]
    assert coop.matched_banks(banks, "pdq", added["signals"]["pdq"]) == ["COOP_ORG1_NUDITY"]
    assert coop.matched_banks(banks, "pdq", hashed["pdq"]) == ["COOP_ORG1_NUDITY"]
    # Renaming: create the new name, delete the old one.
    assert coop.create_bank("COOP_ORG1_RENAMED", 0.5).ok
    assert coop.delete_bank("COOP_ORG1_NUDITY").ok
    assert not coop.bank_exists("COOP_ORG1_NUDITY")
    assert coop.delete_bank("COOP_ORG1_NUDITY").ok  # deleting again is fine
    assert coop.matched_banks(banks, "pdq", hashed["pdq"]) == []


def test_coop_exchange_sequence(base: tuple[str, dict[str, str]], runtime: Runtime) -> None:
    """Coop's exchange screens: list APIs, read a schema, create with credentials, show it."""
    coop = CoopClient(Http(base[0] + "/", base[1]))
    coop.http.prefix = ""
    apis = {info["name"]: info["supports_auth"] for info in coop.exchange_apis()}
    assert apis["fb_threatexchange"] is True and apis["local_file"] is False
    schema = coop.exchange_api_schema("fb_threatexchange")
    assert "privacy_group" in [f["name"] for f in schema["config_schema"]["fields"]]
    assert [f["name"] for f in schema["credentials_schema"]["fields"]] == ["api_token"]
    assert coop.exchange_for_bank("COOP_ORG1_TE") is None
    signal = hashlib.sha256(b"coop exchange item").hexdigest()
    with fake_threatexchange(FakeThreatExchange(page_size=4)) as fake:
        fake.add(Indicator(signal, last_updated=1_700_000_001))
        api_json = {"privacy_group": fake.privacy_group, "base_url": fake.base_url}
        refused = coop.create_exchange(
            "COOP_ORG1_TE", "fb_threatexchange", {}, {"api_token": TOKEN}
        )
        assert refused.status == 400 and TOKEN not in refused.body.decode()
        created = coop.create_exchange(
            "COOP_ORG1_TE", "fb_threatexchange", api_json, {"api_token": TOKEN}
        )
        assert created.status == 201, created
        info = coop.exchange_for_bank("COOP_ORG1_TE")
        assert info is not None
        assert info["api"] == "fb_threatexchange" and info["enabled"] is True
        assert info["has_auth"] is True and info["has_own_credentials"] is True
        assert info["fetched_items"] == 0 and info["last_fetch_complete_ts"] is None
        assert coop.set_exchange_credentials("COOP_ORG1_TE", {"api_token": TOKEN}).ok
        assert coop.set_exchange_credentials("COOP_ORG1_NONE", {"api_token": TOKEN}).status == 404
        # HMA fetches on its schedule; here the fetch is run now.
        fetch = coop.http("POST", "/exchanges/COOP_ORG1_TE/fetch")
        assert fetch.status == 202, fetch
        run_jobs(runtime, ["fetch"])
    info = coop.exchange_for_bank("COOP_ORG1_TE")
    assert info is not None
    assert info["last_fetch_succeeded"] is True and info["up_to_date"] is True
    assert info["fetched_items"] == 1 and info["is_fetching"] is False
    assert isinstance(info["last_fetch_complete_ts"], int)
    banks = ["COOP_ORG1_TE", "COOP_ORG1_OTHER"]
    assert coop.matched_banks(banks, "pdq", signal) == ["COOP_ORG1_TE"]


def test_ruby_gem_sequence(base: tuple[str, dict[str, str]]) -> None:
    ruby = RubyClient(Http(base[0], base[1]))
    photo, other = make_photo(seed=41), make_photo(seed=42)
    assert ruby.server_ready()
    assert ruby.create_bank("RUBY_BANK") == {
        "name": "RUBY_BANK",
        "matching_enabled_ratio": 1.0,
        "enabled": True,
    }
    with pytest.raises(FileExistsError):
        ruby.create_bank("RUBY_BANK")
    assert ruby.bank_exists("RUBY_BANK") and not ruby.bank_exists("NO_BANK")
    added = ruby.add_file_to_bank("RUBY_BANK", photo, {"content_id": "r-1", "json": {"k": 1}})
    assert ruby.hash_file(photo) == added["signals"]
    signal = added["signals"]["pdq"]
    assert ruby.raw_lookup(signal, include_distance=False) == [added["id"]]
    assert ruby.raw_lookup(signal, include_distance=True) == [(added["id"], 0)]
    assert ruby.lookup_signal(signal) == [("pdq", "RUBY_BANK", added["id"], 0)]
    assert ruby.lookup_file(photo) == [("pdq", "RUBY_BANK", added["id"], 0)]
    with loopback_server() as server:
        url = server.add("/other.jpg", serve_bytes(other, content_type="image/jpeg"))
        assert ruby.lookup_url(url) == []
        by_url = ruby.add_url_to_bank("RUBY_BANK", url, {"content_id": "r-2"})
        assert ruby.lookup_url(url) == [("pdq", "RUBY_BANK", by_url["id"], 0)]
