"""HMA 2.0's clients, replayed: the call sequences, encodings and field reads of ROOST's Coop
(``server/services/hmaService/index.ts``: its main version and the later one with
per-exchange credentials), FetLife's Ruby gem (``hasher_matcher_actioner_api``: banks,
hashing, matching, status, exchanges) and Jigsaw Altitude's HMA sidecar branch, sent over
real sockets to a live server.

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

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


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
    """Coop's HmaService (roostorg/coop main): its base URL ends in '/', so every path it
    joins starts with '//'. Credentials are the API's (``/c/exchanges/api/<api>``)."""

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

    def create_exchange_bank(
        self, hma_name: str, api: str, api_json: dict[str, Any], enabled_ratio: float
    ) -> Reply:
        """createBank with an exchange: the exchange makes the bank; the ratio goes after."""
        body = {"bank": hma_name, "api": api, "api_json": api_json}
        created = self._json("POST", "/c/exchanges", body)
        if created.ok and enabled_ratio != 1.0:
            self._json("PUT", f"/c/bank/{hma_name}", {"enabled_ratio": enabled_ratio})
        return created

    def update_ratio(self, hma_name: str, enabled_ratio: float) -> Reply:
        return self._json("PUT", f"/c/bank/{hma_name}", {"enabled_ratio": enabled_ratio})

    def rename_bank(self, old: str, new: str, enabled_ratio: float) -> Reply:
        """updateBank with a new name: create the new bank, then delete the old one."""
        created = self.create_bank(new, enabled_ratio)
        if created.ok:
            self.delete_bank(old)
        return created

    def bank_exists(self, hma_name: str) -> bool:
        """getBank: a bodiless GET; 404 means gone."""
        return self.http("GET", f"//c/bank/{hma_name}").status != 404

    def list_bank_exists(self, hma_name: str) -> bool:
        """listBanks checks each bank with a JSON content type on its bodiless GET."""
        reply = self.http(
            "GET", f"//c/bank/{hma_name}", headers={"Content-Type": "application/json"}
        )
        return reply.status != 404

    def delete_bank(self, hma_name: str) -> Reply:
        return self.http("DELETE", f"//c/bank/{hma_name}")

    def add_file(self, bank: str, photo: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
        """undici's FormData names a Blob "blob"; content_id and content_uri are fields of
        their own, and ``metadata`` is only the free-form ``json`` part."""
        fields: list[tuple[str, str | None, str | None, bytes]] = [
            ("photo", "blob", "application/octet-stream", photo)
        ]
        for key in ("content_id", "content_uri"):
            if metadata.get(key):
                fields.append((key, None, None, metadata[key].encode()))
        if metadata.get("json"):
            fields.append(("metadata", None, None, json.dumps(metadata["json"]).encode()))
        content_type, body = multipart(fields)
        reply = self.http("POST", f"//c/bank/{bank}/content", body, {"Content-Type": content_type})
        assert reply.ok, reply
        found: dict[str, Any] = reply.json()
        return found

    def add_url(self, bank: str, url: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """URL adds put everything in the query string, no body: content_id, content_uri,
        and ``metadata`` as the JSON of the free-form part."""
        params = [("url", url)]
        for key in ("content_id", "content_uri"):
            if metadata.get(key):
                params.append((key, metadata[key]))
        if metadata.get("json"):
            params.append(("metadata", json.dumps(metadata["json"])))
        query = urllib.parse.urlencode(params)
        reply = self.http("POST", f"//c/bank/{bank}/content?{query}")
        assert reply.ok, reply
        found: dict[str, Any] = reply.json()
        return found

    def hash_url(self, url: str) -> dict[str, str]:
        reply = self.http("GET", "//h/hash?url=" + urllib.parse.quote(url, safe=""))
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

    def _api_config(self, name: str) -> Reply:
        return self.http("GET", "//c/exchanges/api/" + urllib.parse.quote(name, safe=""))

    def exchange_apis(self) -> list[dict[str, Any]]:
        reply = self.http("GET", "//c/exchanges/apis")
        assert reply.ok, reply
        infos = []
        for name in reply.json():
            config = self._api_config(name)
            if config.ok:
                body = config.json()
                supports, has = body["supports_authentification"], body["has_set_authentification"]
            else:
                supports, has = False, False
            infos.append({"name": name, "supports_auth": supports, "has_auth": has})
        return infos

    def exchange_api_schema(self, api: str) -> dict[str, Any]:
        reply = self.http("GET", f"//c/exchanges/api/{urllib.parse.quote(api, safe='')}/schema")
        assert reply.ok, reply
        schema: dict[str, Any] = reply.json()
        return schema

    def set_api_credentials(self, api: str, credentials: dict[str, Any]) -> Reply:
        path = f"/c/exchanges/api/{urllib.parse.quote(api, safe='')}"
        return self._json("POST", path, {"credential_json": credentials})

    def _fetch_status(self, name: str, info: dict[str, Any]) -> None:
        status = self.http("GET", f"//c/exchange/{name}/status")
        if status.ok:
            fetch = status.json()
            info["last_fetch_succeeded"] = fetch["last_fetch_succeeded"]
            info["up_to_date"] = fetch["up_to_date"]
            info["fetched_items"] = fetch["fetched_items"]
            info["is_fetching"] = fetch["running_fetch_start_ts"] is not None
            info["last_fetch_complete_ts"] = fetch["last_fetch_complete_ts"]

    def exchange_for_bank(self, hma_name: str) -> dict[str, Any] | None:
        name = urllib.parse.quote(hma_name, safe="")
        reply = self.http("GET", f"//c/exchange/{name}")
        if reply.status == 404:
            return None
        assert reply.ok, reply
        body = reply.json()
        api = str(body.get("api") or "")
        config = self._api_config(api)
        has_auth = config.json()["has_set_authentification"] if config.ok else False
        info: dict[str, Any] = {
            "api": api,
            "enabled": bool(body.get("enabled")),
            "has_auth": has_auth,
        }
        self._fetch_status(name, info)
        return info


class CoopPerExchangeClient(CoopClient):
    """Coop's per-exchange-credentials HmaService (a later version): credentials go with
    the exchange, renames happen in place, exchange-backed banks go through /c/exchange."""

    def exchange_apis(self) -> list[dict[str, Any]]:
        """has_set_authentification is deliberately not read (it is not org state)."""
        reply = self.http("GET", "//c/exchanges/apis")
        assert reply.ok, reply
        infos = []
        for name in reply.json():
            config = self._api_config(name)
            supports = config.json()["supports_authentification"] if config.ok else False
            infos.append({"name": name, "supports_auth": supports})
        return infos

    def create_exchange_bank(  # type: ignore[override]
        self,
        hma_name: str,
        api: str,
        api_json: dict[str, Any],
        enabled_ratio: float,
        credentials: dict[str, Any] | None = None,
    ) -> Reply:
        schema = self.exchange_api_schema(api)  # Coop checks credentials against it first
        allowed = {f["name"] for f in (schema["credentials_schema"] or {"fields": []})["fields"]}
        assert set(credentials or {}) <= allowed
        body: dict[str, Any] = {"bank": hma_name, "api": api, "api_json": api_json}
        if credentials:
            body["credential_json"] = credentials
        created = self._json("POST", "/c/exchanges", body)
        if created.ok and enabled_ratio != 1.0:
            ratio = self._json("PUT", f"/c/bank/{hma_name}", {"enabled_ratio": enabled_ratio})
            assert ratio.ok, ratio
        return created

    def has_exchange(self, hma_name: str) -> bool:
        reply = self.http("GET", f"//c/exchange/{urllib.parse.quote(hma_name, safe='')}")
        if reply.status == 404:
            return False
        assert reply.ok, reply
        return True

    def rename_bank(self, old: str, new: str, enabled_ratio: float) -> Reply:
        """PUT /c/bank renames in place (the bank keeps its content); 403: name taken."""
        return self._json("PUT", f"/c/bank/{urllib.parse.quote(old, safe='')}", {"name": new})

    def delete_bank(self, hma_name: str) -> Reply:
        name = urllib.parse.quote(hma_name, safe="")
        kind = "exchange" if self.has_exchange(hma_name) else "bank"
        reply = self.http("DELETE", f"//c/{kind}/{name}")
        assert reply.ok or reply.status == 404, reply
        return reply

    def forget_missing_bank(self, hma_name: str) -> bool:
        reply = self.http("DELETE", f"//c/exchange/{urllib.parse.quote(hma_name, safe='')}")
        return reply.ok or reply.status == 404

    def set_exchange_credentials(self, hma_name: str, credentials: dict[str, Any]) -> Reply:
        path = f"/c/exchange/{urllib.parse.quote(hma_name, safe='')}/credentials"
        return self._json("POST", path, {"credential_json": credentials})

    @staticmethod
    def credential_status(raw: Any) -> dict[str, bool]:
        """parseCredentialStatus: "own" means the source is this exchange."""
        status = raw or {}
        has = status.get("has_credentials") is True
        return {
            "has_credentials": has,
            "has_own_credentials": has and status.get("source") == "exchange",
        }

    def exchange_for_bank(self, hma_name: str) -> dict[str, Any] | None:
        name = urllib.parse.quote(hma_name, safe="")
        reply = self.http("GET", f"//c/exchange/{name}")
        if reply.status == 404:
            return None
        assert reply.ok, reply
        body = reply.json()
        status = self.credential_status(body.get("credential_status"))
        info: dict[str, Any] = {
            "api": str(body.get("api") or ""),
            "enabled": bool(body.get("enabled")),
            "has_auth": status["has_credentials"],
            "has_own_credentials": status["has_own_credentials"],
        }
        self._fetch_status(name, info)
        return info

    def add_url(
        self, bank: str, url: str, metadata: dict[str, Any], note: str = ""
    ) -> dict[str, Any]:  # type: ignore[override]
        """This version sends metadata and note as a JSON body beside ``?url=``."""
        body: dict[str, Any] = {"metadata": metadata}
        if note:
            body["note"] = note[:255]
        query = urllib.parse.urlencode({"url": url})
        reply = self._json("POST", f"/c/bank/{bank}/content?{query}", body)
        assert reply.ok, reply
        found: dict[str, Any] = reply.json()
        return found


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


class RubyExchanges(RubyClient):
    """The gem's exchange modules: Faraday JSON bodies, reads coerced by Dry::Struct types
    (strict Integer and Bool where the gem declares them)."""

    def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        reply = self.http(
            "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        return self._handle(reply)

    def list_exchange_apis(self) -> list[str]:
        return [str(api) for api in self._get("/c/exchanges/apis", {})]

    def get_exchange_api_config(self, name: str) -> dict[str, Any]:
        config = {"name": name, **self._get(f"/c/exchanges/api/{name}", {})}
        assert set(config) == {"name", "supports_authentification", "has_set_authentification"}
        return config

    def update_exchange_api_config(self, name: str, credential_json: dict[str, Any]) -> bool:
        config = self._post_json(f"/c/exchanges/api/{name}", {"credential_json": credential_json})
        valid = not config["supports_authentification"] or config["has_set_authentification"]
        if not valid:  # Config#validate!
            raise PermissionError(f"Exchange {name} requires authentication, but has not been set")
        return True

    def create_exchange(self, api: str, bank: str, api_json: dict[str, Any]) -> dict[str, Any]:
        self._post_json("/c/exchanges", {"api": api, "bank": bank, "api_json": api_json})
        return self.get_exchange(bank)

    def get_exchange(self, name: str) -> dict[str, Any]:
        found = self._get(f"/c/exchange/{name}", {})
        assert isinstance(found["name"], str) and isinstance(found["api"], str)
        assert isinstance(found.get("enabled", True), bool)
        return {"name": found["name"], "api": found["api"], "enabled": found.get("enabled", True)}

    def exchange_exists(self, name: str) -> bool:
        try:
            self.get_exchange(name)
        except LookupError:
            return False
        return True

    def get_exchange_fetch_status(self, name: str) -> dict[str, Any]:
        found = self._get(f"/c/exchange/{name}/status", {})
        optional_int = ("checkpoint_ts", "last_fetch_complete_ts", "running_fetch_start_ts")
        for key in optional_int:
            assert found[key] is None or type(found[key]) is int, key
        assert type(found["fetched_items"]) is int
        assert found["last_fetch_succeeded"] in (None, True, False)
        assert type(found["up_to_date"]) is bool
        return {
            k: found[k]
            for k in (*optional_int, "fetched_items", "last_fetch_succeeded", "up_to_date")
        }


class AltitudeClient:
    """Jigsaw Altitude's HMA sidecar (``signal-service/src/utils/hma.py`` on its ``hma``
    branch): ``requests`` with ``files={"photo": data}`` (the field name doubles as the
    filename) and an unencoded ``?url=``. It reads ``pdq``; its dataclass also wants
    ``video_md5``, which HMA 2.0 never answers for a photo, and neither do we."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def hash_from_bytes(self, data: bytes) -> str | None:
        content_type, body = multipart([("photo", "photo", None, data)])
        reply = self.http("POST", "/h/hash", body, {"Content-Type": content_type})
        return str(reply.json()["pdq"]) if reply.ok else None

    def hash_from_url(self, url: str) -> str | None:
        reply = self.http("GET", f"/h/hash?url={url}")
        return str(reply.json()["pdq"]) if reply.ok else None


@pytest.fixture
def base(live_server: str, runtime: Runtime, tokens: Tokens) -> tuple[str, dict[str, str]]:
    return live_server, Tokens.header(tokens.admin)


def coop_client(base: tuple[str, dict[str, str]], cls: type[CoopClient] = CoopClient) -> Any:
    coop = cls(Http(base[0] + "/", base[1]))
    coop.http.prefix = ""  # the base URL's trailing "/" is the first of the two slashes
    return coop


def test_coop_sequence(base: tuple[str, dict[str, str]]) -> None:
    coop = coop_client(base)
    photo, other = make_photo(seed=21), make_photo(seed=22)
    assert coop.create_bank("COOP_ORG1_NUDITY", 1.0).ok
    assert coop.bank_exists("COOP_ORG1_NUDITY") and not coop.bank_exists("COOP_ORG1_NONE")
    assert coop.list_bank_exists("COOP_ORG1_NUDITY")
    assert coop.update_ratio("COOP_ORG1_NUDITY", 1.0).ok
    metadata = {"content_id": "item-1", "content_uri": "https://x.test/1.jpg", "json": {"by": 7}}
    added = coop.add_file("COOP_ORG1_NUDITY", photo, metadata)
    assert isinstance(added["id"], int) and set(added["signals"]) == {"pdq"}
    stored = coop.http("GET", f"//c/bank/COOP_ORG1_NUDITY/content/{added['id']}").json()
    assert stored["metadata"] == {**metadata, "collab": None}
    with loopback_server() as server:
        url = server.add("/o.jpg", serve_bytes(other, content_type="image/jpeg"))
        # Coop's URL add: only query parameters, the json part alone as "metadata".
        by_url = coop.add_url("COOP_ORG1_NUDITY", url, {"content_id": "item-2", "json": {"a": 1}})
        hashed = coop.hash_url(url)
    assert hashed == by_url["signals"]
    stored = coop.http("GET", f"//c/bank/COOP_ORG1_NUDITY/content/{by_url['id']}").json()
    assert stored["metadata"] == {
        "content_id": "item-2",
        "content_uri": None,
        "json": {"a": 1},
        "collab": None,
    }
    banks = ["COOP_ORG1_NUDITY", "COOP_ORG1_OTHER"]
    assert coop.matched_banks(banks, "pdq", added["signals"]["pdq"]) == ["COOP_ORG1_NUDITY"]
    assert coop.matched_banks(banks, "pdq", hashed["pdq"]) == ["COOP_ORG1_NUDITY"]
    # Renaming: create the new name, delete the old one (its content goes with it).
    assert coop.rename_bank("COOP_ORG1_NUDITY", "COOP_ORG1_RENAMED", 0.5).ok
    assert not coop.bank_exists("COOP_ORG1_NUDITY") and coop.bank_exists("COOP_ORG1_RENAMED")
    assert coop.delete_bank("COOP_ORG1_NUDITY").ok  # deleting again is fine
    assert coop.matched_banks(banks, "pdq", hashed["pdq"]) == []


def test_coop_exchange_sequence(base: tuple[str, dict[str, str]], runtime: Runtime) -> None:
    """Coop main's exchange screens: the API's credentials first (before any exchange of it
    exists), then a bank made by an exchange with a ratio, its info and fetch status."""
    coop = coop_client(base)
    apis = {info["name"]: info for info in coop.exchange_apis()}
    assert apis["fb_threatexchange"] == {
        "name": "fb_threatexchange",
        "supports_auth": True,
        "has_auth": False,
    }
    assert apis["local_file"]["supports_auth"] is False
    schema = coop.exchange_api_schema("fb_threatexchange")
    assert "privacy_group" in [f["name"] for f in schema["config_schema"]["fields"]]
    assert [f["name"] for f in schema["credentials_schema"]["fields"]] == ["api_token"]
    assert coop.set_api_credentials("fb_threatexchange", {"api_token": TOKEN}).ok
    assert {i["name"]: i for i in coop.exchange_apis()}["fb_threatexchange"]["has_auth"] is True
    assert coop.exchange_for_bank("COOP_ORG1_TE") is None
    signal = hashlib.sha256(b"coop exchange item").hexdigest()
    with fake_threatexchange(FakeThreatExchange(page_size=4)) as fake:
        fake.add(Indicator(signal, last_updated=1_700_000_001))
        api_json = {"privacy_group": fake.privacy_group, "base_url": fake.base_url}
        assert coop.create_exchange_bank("COOP_ORG1_TE", "fb_threatexchange", {}, 1.0).status == 400
        created = coop.create_exchange_bank("COOP_ORG1_TE", "fb_threatexchange", api_json, 0.5)
        assert created.status == 201, created
        ratio = coop.http("GET", "//c/bank/COOP_ORG1_TE").json()["matching_enabled_ratio"]
        assert ratio == 0.5
        info = coop.exchange_for_bank("COOP_ORG1_TE")
        assert info == {
            "api": "fb_threatexchange",
            "enabled": True,
            "has_auth": True,
            "last_fetch_succeeded": None,
            "up_to_date": False,
            "fetched_items": 0,
            "is_fetching": False,
            "last_fetch_complete_ts": None,
        }
        # HMA fetches on its schedule; here the fetch is run now.
        assert coop.http("POST", "/exchanges/COOP_ORG1_TE/fetch").status == 202
        run_jobs(runtime, ["fetch"])
    info = coop.exchange_for_bank("COOP_ORG1_TE")
    assert info is not None
    assert info["last_fetch_succeeded"] is True and info["up_to_date"] is True
    assert info["fetched_items"] == 1 and info["is_fetching"] is False
    assert isinstance(info["last_fetch_complete_ts"], int)
    coop.update_ratio("COOP_ORG1_TE", 1.0)
    assert coop.matched_banks(["COOP_ORG1_TE"], "pdq", signal) == ["COOP_ORG1_TE"]


def test_coop_per_exchange_credentials_sequence(
    base: tuple[str, dict[str, str]], runtime: Runtime
) -> None:
    """The later Coop: credentials per exchange (status parsed from credential_status),
    renames in place, deletes through /c/exchange for exchange-backed banks."""
    coop = coop_client(base, CoopPerExchangeClient)
    assert {i["name"]: i for i in coop.exchange_apis()}["fb_threatexchange"] == {
        "name": "fb_threatexchange",
        "supports_auth": True,
    }
    signal = hashlib.sha256(b"per exchange item").hexdigest()
    with fake_threatexchange(FakeThreatExchange(page_size=4)) as fake:
        fake.add(Indicator(signal, last_updated=1_700_000_001))
        api_json = {"privacy_group": fake.privacy_group, "base_url": fake.base_url}
        refused = coop.create_exchange_bank(
            "COOP_ORG2_TE", "fb_threatexchange", {}, 1.0, {"api_token": TOKEN}
        )
        assert refused.status == 400 and TOKEN not in refused.body.decode()
        created = coop.create_exchange_bank(
            "COOP_ORG2_TE", "fb_threatexchange", api_json, 1.0, {"api_token": TOKEN}
        )
        assert created.status == 201, created
        info = coop.exchange_for_bank("COOP_ORG2_TE")
        assert info is not None and info["has_auth"] is True and info["has_own_credentials"] is True
        assert coop.set_exchange_credentials("COOP_ORG2_TE", {"api_token": TOKEN}).ok
        missing = coop.set_exchange_credentials("COOP_ORG2_NONE", {"api_token": TOKEN})
        assert missing.status == 404
        assert coop.http("POST", "/exchanges/COOP_ORG2_TE/fetch").status == 202
        run_jobs(runtime, ["fetch"])
    info = coop.exchange_for_bank("COOP_ORG2_TE")
    assert info is not None and info["fetched_items"] == 1 and info["last_fetch_succeeded"]
    assert coop.matched_banks(["COOP_ORG2_TE"], "pdq", signal) == ["COOP_ORG2_TE"]

    # A plain bank renamed in place keeps its content; a taken name is HMA 2.0's 403.
    assert coop.create_bank("COOP_ORG2_PLAIN", 1.0).ok
    added = coop._json("POST", "/c/bank/COOP_ORG2_PLAIN/signal", {"pdq": PDQ})
    assert added.ok
    assert coop.rename_bank("COOP_ORG2_PLAIN", "COOP_ORG2_TE", 1.0).status == 403
    assert coop.rename_bank("COOP_ORG2_PLAIN", "COOP_ORG2_RENAMED", 1.0).ok
    assert coop.matched_banks(["COOP_ORG2_RENAMED"], "pdq", PDQ) == ["COOP_ORG2_RENAMED"]

    # Deleting: the exchange-backed bank goes through /c/exchange (taking its bank along).
    assert coop.delete_bank("COOP_ORG2_TE").ok
    assert coop.exchange_for_bank("COOP_ORG2_TE") is None and not coop.bank_exists("COOP_ORG2_TE")
    assert coop.delete_bank("COOP_ORG2_RENAMED").ok and not coop.bank_exists("COOP_ORG2_RENAMED")
    assert coop.forget_missing_bank("COOP_ORG2_GONE")


def test_altitude_sidecar_sequence(base: tuple[str, dict[str, str]]) -> None:
    altitude = AltitudeClient(Http(base[0], base[1]))
    photo = make_photo(seed=61)
    by_bytes = altitude.hash_from_bytes(photo)
    assert by_bytes is not None and len(by_bytes) == 64
    with loopback_server() as server:
        url = server.add("/a.jpg", serve_bytes(photo, content_type="image/jpeg"))
        assert altitude.hash_from_url(url) == by_bytes


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
        stored = ruby.http("GET", f"/c/bank/RUBY_BANK/content/{by_url['id']}").json()
        assert stored["metadata"]["content_id"] == "r-2"


def test_ruby_gem_exchange_sequence(base: tuple[str, dict[str, str]], runtime: Runtime) -> None:
    ruby = RubyExchanges(Http(base[0], base[1]))
    assert "fb_threatexchange" in ruby.list_exchange_apis()
    assert ruby.get_exchange_api_config("fb_threatexchange") == {
        "name": "fb_threatexchange",
        "supports_authentification": True,
        "has_set_authentification": False,
    }
    assert ruby.update_exchange_api_config("fb_threatexchange", {"api_token": TOKEN})
    assert not ruby.exchange_exists("RUBY_TE")
    with fake_threatexchange(FakeThreatExchange(page_size=4)) as fake:
        fake.add(Indicator(hashlib.sha256(b"ruby").hexdigest(), last_updated=1_700_000_001))
        api_json = {"privacy_group": fake.privacy_group, "base_url": fake.base_url}
        created = ruby.create_exchange("fb_threatexchange", "RUBY_TE", api_json)
        assert created == {"name": "RUBY_TE", "api": "fb_threatexchange", "enabled": True}
        assert ruby.exchange_exists("RUBY_TE")
        assert ruby.get_exchange_fetch_status("RUBY_TE") == {
            "checkpoint_ts": None,
            "last_fetch_complete_ts": None,
            "running_fetch_start_ts": None,
            "fetched_items": 0,
            "last_fetch_succeeded": None,
            "up_to_date": False,
        }
        assert ruby.http("POST", "/exchanges/RUBY_TE/fetch").status == 202
        run_jobs(runtime, ["fetch"])
    after = ruby.get_exchange_fetch_status("RUBY_TE")
    assert after["last_fetch_succeeded"] is True and after["fetched_items"] == 1
    assert after["checkpoint_ts"] == 1_700_000_001 and after["up_to_date"] is True
