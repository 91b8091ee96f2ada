"""HMA 2.0 compatibility: the curation routes' exact answers (``/c/...``)."""

from __future__ import annotations

import http.client
import io
import json
import time
from typing import Any

import pytest

from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens, make_photo

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


class Api:
    """The test client with a key, reading answers as HMA 2.0's clients do."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = Tokens.header(token)

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def api(client: Any, tokens: Tokens) -> Api:
    return Api(client, tokens.admin)


def test_bank_routes_answer_hma2_shapes(api: Api, client: Any, tokens: Tokens) -> None:
    created = api("POST", "/c/banks", json={"name": "TEST_BANK", "enabled_ratio": "0.5"})
    assert created.status_code == 201
    assert created.get_json() == {"name": "TEST_BANK", "matching_enabled_ratio": 0.5}
    duplicate = api("POST", "/c/banks", json={"name": "TEST_BANK"})
    assert duplicate.status_code == 403
    assert duplicate.get_json() == {"message": "Bank already exists"}
    for bad in ("lower", "HAS SPACE", "1ST", ""):
        response = api("POST", "/c/banks", json={"name": bad})
        assert response.status_code == 400, bad
        assert response.get_json() == {"message": "Bank names must be UPPER_WITH_UNDERSCORE"}
    # The Ruby client sends enabled as a string and the ratio under the response's name.
    ruby = api(
        "POST", "/c/banks", json={"name": "RUBY", "enabled": "true", "matching_enabled_ratio": 1.0}
    )
    assert ruby.get_json() == {"name": "RUBY", "matching_enabled_ratio": 1.0}
    off = api("POST", "/c/banks", json={"name": "OFF", "enabled": False})
    assert off.get_json() == {"name": "OFF", "matching_enabled_ratio": 0.0}

    assert api("GET", "/c/banks").get_json() == [
        {"name": "OFF", "matching_enabled_ratio": 0.0},
        {"name": "RUBY", "matching_enabled_ratio": 1.0},
        {"name": "TEST_BANK", "matching_enabled_ratio": 0.5},
    ]
    assert api("GET", "/c/bank/TEST_BANK").get_json() == {
        "name": "TEST_BANK",
        "matching_enabled_ratio": 0.5,
    }
    missing = api("GET", "/c/bank/NOPE")
    assert missing.status_code == 404 and missing.get_json() == {"message": "bank 'NOPE' not found"}

    # PUT: ratio, rename, duplicate rename, missing bank.
    assert api("PUT", "/c/bank/TEST_BANK", json={"enabled_ratio": 0.25}).get_json() == {
        "name": "TEST_BANK",
        "matching_enabled_ratio": 0.25,
    }
    renamed = api("PUT", "/c/bank/TEST_BANK", json={"name": "RENAMED"})
    assert renamed.get_json() == {"name": "RENAMED", "matching_enabled_ratio": 0.25}
    assert api("GET", "/c/bank/TEST_BANK").status_code == 404
    clash = api("PUT", "/c/bank/RENAMED", json={"name": "RUBY", "enabled_ratio": 0.9})
    assert clash.status_code == 403 and clash.get_json() == {"message": "Bank name already exists"}
    invalid = api("PUT", "/c/bank/RENAMED", json={"name": "1_invalid", "enabled_ratio": 0.9})
    assert invalid.status_code == 400
    assert invalid.get_json() == {"message": "Bank names must be UPPER_WITH_UNDERSCORE"}
    # A refused update changed nothing.
    assert api("GET", "/c/bank/RENAMED").get_json()["matching_enabled_ratio"] == 0.25
    assert api("PUT", "/c/bank/NOPE", json={"enabled": True}).get_json() == {
        "message": "Bank not found"
    }

    # DELETE answers 200 whether or not the bank is there.
    for _ in range(2):
        deleted = api("DELETE", "/c/bank/RENAMED")
        assert deleted.status_code == 200 and deleted.get_json() == {"message": "Done"}
    # Writes need admin; a reader may look.
    reader = Api(client, tokens.read)
    assert reader("GET", "/c/banks").status_code == 200
    assert reader("POST", "/c/banks", json={"name": "X"}).status_code == 403
    assert client.get("/c/banks").status_code == 401


def test_ratio_and_switch_are_one_setting_for_both_apis(api: Api) -> None:
    api("POST", "/c/banks", json={"name": "SHARED", "enabled_ratio": 0.3})
    ours = api("GET", "/banks/SHARED").get_json()
    assert ours["enabled"] is True and ours["matching_enabled_ratio"] == 0.3
    api("PUT", "/c/bank/SHARED", json={"enabled_ratio": 0})
    assert api("GET", "/banks/SHARED").get_json()["enabled"] is False
    api("PATCH", "/banks/SHARED", json={"enabled": True})
    assert api("GET", "/c/bank/SHARED").get_json()["matching_enabled_ratio"] == 1.0
    api("PATCH", "/banks/SHARED", json={"enabled": False})
    assert api("GET", "/c/bank/SHARED").get_json()["matching_enabled_ratio"] == 0.0


def test_content_routes_answer_hma2_shapes(api: Api) -> None:
    api("POST", "/c/banks", json={"name": "CONTENT"})
    added = api("POST", "/c/bank/CONTENT/signal", json={"pdq": PDQ.upper()})
    assert added.status_code == 200
    body = added.get_json()
    assert body == {"id": body["id"], "signals": {"pdq": PDQ}} and isinstance(body["id"], int)
    content_id = body["id"]
    # The same id is the member id of this project's API.
    assert api("GET", f"/banks/CONTENT/members/{content_id}").get_json()["signals"] == [
        {"signal_type": "pdq", "signal_value": PDQ}
    ]

    # GET leaves out what is absent (signals unless asked, metadata, note), as HMA 2.0 does.
    expected = {
        "id": content_id,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": {"name": "CONTENT", "matching_enabled_ratio": 1.0},
    }
    assert api("GET", f"/c/bank/CONTENT/content/{content_id}").get_json() == expected
    with_signals = api("GET", f"/c/bank/CONTENT/content/{content_id}?include_signals=true")
    assert with_signals.get_json() == {**expected, "signals": {"pdq": PDQ}}
    for only, signals in [("pdq", {"pdq": PDQ}), ("video_md5", {})]:
        filtered = api("GET", f"/c/bank/CONTENT/content/{content_id}?signal_type={only}")
        assert filtered.get_json() == {**expected, "signals": signals}
    unknown = api("GET", f"/c/bank/CONTENT/content/{content_id}?signal_type=invalid")
    assert unknown.status_code == 400
    assert unknown.get_json() == {"message": "No such signal type 'invalid'"}

    # PUT answers HMA 2.0's whole stored record (its dataclass), not the GET shape.
    record = {
        "id": content_id,
        "disable_until_ts": 1,
        "collab_metadata": {},
        "original_media_uri": None,
        "bank": {"name": "CONTENT", "matching_enabled_ratio": 1.0},
        "user_metadata": None,
        "note": None,
    }
    later = int(time.time()) + 3600
    disabled = api("PUT", f"/c/bank/CONTENT/content/{content_id}", json={"disable_until_ts": later})
    assert disabled.get_json() == {**record, "disable_until_ts": later}
    noted = api("PUT", f"/c/bank/CONTENT/content/{content_id}", json={"note": "seen twice"})
    assert noted.get_json() == {**record, "disable_until_ts": later, "note": "seen twice"}
    shown = api("GET", f"/c/bank/CONTENT/content/{content_id}").get_json()
    assert shown == {**expected, "disable_until_ts": later, "note": "seen twice"}
    cleared = api("PUT", f"/c/bank/CONTENT/content/{content_id}", json={"note": ""})
    assert cleared.get_json()["note"] is None
    assert "note" not in api("GET", f"/c/bank/CONTENT/content/{content_id}").get_json()
    too_long = api("PUT", f"/c/bank/CONTENT/content/{content_id}", json={"note": "x" * 256})
    assert too_long.status_code == 400
    assert too_long.get_json() == {"message": "note must be at most 255 characters"}
    off = api("PUT", f"/c/bank/CONTENT/content/{content_id}", json={"disable_until_ts": "0"})
    assert off.get_json()["disable_until_ts"] == 0
    assert api("GET", f"/banks/CONTENT/members/{content_id}").get_json()["enabled"] is False
    for bad, message in [
        (-1, "disable_until_ts must be a non-negative integer"),
        ("soon", "disable_until_ts must be a non-negative integer"),
        (int(time.time()) + 6 * 365 * 86400, "disable_until_ts must be less than 5 years"),
    ]:
        response = api(
            "PUT", f"/c/bank/CONTENT/content/{content_id}", json={"disable_until_ts": bad}
        )
        assert response.status_code == 400 and message in response.get_json()["message"]

    for path, message in [
        ("/c/bank/CONTENT/content/999999", "content '999999' not found"),
        ("/c/bank/NOPE/content/1", "bank 'NOPE' not found"),
    ]:
        response = api("GET", path)
        assert response.status_code == 404 and response.get_json() == {"message": message}

    for body, message in [
        ({}, "No signals given"),
        ({"nope": "x"}, "No such signal type nope"),
        ({"pdq": "zz"}, "Invalid pdq signal"),
    ]:
        response = api("POST", "/c/bank/CONTENT/signal", json=body)
        assert response.status_code == 400 and message in response.get_json()["message"]
    assert api("POST", "/c/bank/NOPE/signal", json={"pdq": PDQ}).status_code == 404

    assert api("DELETE", f"/c/bank/CONTENT/content/{content_id}").get_json() == {"deleted": 1}
    assert api("DELETE", f"/c/bank/CONTENT/content/{content_id}").get_json() == {"deleted": 0}
    assert api("GET", f"/c/bank/CONTENT/content/{content_id}").status_code == 404


def test_add_content_by_upload_with_metadata_and_note(api: Api) -> None:
    api("POST", "/c/banks", json={"name": "UPLOADS"})
    photo = make_photo(seed=3)
    # Any filename, or none; metadata as a JSON form field; a note.
    for filename in ("blob", None):
        file_part: Any = (io.BytesIO(photo), filename) if filename else io.BytesIO(photo)
        response = api(
            "POST",
            "/c/bank/UPLOADS/content",
            data={
                "photo": file_part,
                "metadata": '{"content_id": "post-7", "content_uri": "https://x.test/7.jpg"}',
                "note": "reported twice",
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) == {"id", "signals"} and set(body["signals"]) == {"pdq"}
        member = api("GET", f"/banks/UPLOADS/members/{body['id']}").get_json()
        assert member["content_id"] == "post-7" and member["notes"] == "reported twice"
        content = api("GET", f"/c/bank/UPLOADS/content/{body['id']}").get_json()
        assert content["original_media_uri"] is None  # HMA 2.0 never fills it on add
        assert content["metadata"] == {
            "content_id": "post-7",
            "content_uri": "https://x.test/7.jpg",
            "json": None,
            "collab": None,
        }
        assert content["note"] == "reported twice"

    for data, message in [
        ({}, "Neither `url` nor multipart file upload was received"),
        ({"photo": (io.BytesIO(photo), "a.jpg"), "note": "x" * 256}, "note must be at most 255"),
        ({"photo": (io.BytesIO(photo), "a.jpg"), "metadata": "[1]"}, "metadata should be a json"),
        ({"audio": (io.BytesIO(b"hi"), "a.mp3")}, "no such content_type: 'audio'"),
        # Text is a content type (ThreatExchange's text signals), but no file hashes to it.
        ({"text": (io.BytesIO(b"hi"), "a.txt")}, "no installed signal type hashes text"),
    ]:
        response = api(
            "POST", "/c/bank/UPLOADS/content", data=data, content_type="multipart/form-data"
        )
        assert response.status_code == 400 and message in response.get_json()["message"], data


def test_metadata_and_notes_as_hma2_stores_them(api: Api) -> None:
    """HMA 2.0's test_api_banks: JSON metadata is checked and shown back, notes on hashes."""
    api("POST", "/c/banks", json={"name": "META"})
    metadata = {"content_id": "ext-1", "content_uri": "https://x.test/1", "json": {"k": [1]}}
    hashed = api("POST", "/c/bank/META/signal", json={"pdq": PDQ, "note": "campaign ABC"})
    assert hashed.status_code == 200 and set(hashed.get_json()) == {"id", "signals"}
    shown = api("GET", f"/c/bank/META/content/{hashed.get_json()['id']}").get_json()
    assert shown["note"] == "campaign ABC" and "metadata" not in shown
    for bad, message in [
        ({"note": 5}, "note should be a string"),
        ({"note": "x" * 256}, "note must be at most 255 characters"),
    ]:
        refused = api("POST", "/c/bank/META/signal", json={"pdq": PDQ, **bad})
        assert refused.status_code == 400 and refused.get_json() == {"message": message}

    photo = make_photo(seed=5)
    with_meta = api(
        "POST",
        "/c/bank/META/content",
        data={"photo": (io.BytesIO(photo), "p.jpg"), "metadata": json.dumps(metadata)},
        content_type="multipart/form-data",
    )
    content_id = with_meta.get_json()["id"]
    shown = api("GET", f"/c/bank/META/content/{content_id}").get_json()
    assert shown == {
        "id": content_id,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": {"name": "META", "matching_enabled_ratio": 1.0},
        "metadata": {**metadata, "collab": None},
    }
    hidden = api("GET", f"/c/bank/META/content/{content_id}?include_metadata=false")
    assert "metadata" not in hidden.get_json()
    record = api("PUT", f"/c/bank/META/content/{content_id}", json={}).get_json()
    assert record["user_metadata"] == metadata and record["collab_metadata"] == {}

    for bad, message in [
        ({"invalid_metadata": 5}, "Invalid metadata: unknown fields ['invalid_metadata']"),
        ([1], "metadata should be a json object"),
        ({"json": "text"}, "Invalid metadata: json must be an object"),
    ]:
        refused = api(
            "POST", "/c/bank/META/content?url=http://127.0.0.1:9/x.jpg", json={"metadata": bad}
        )
        assert refused.status_code == 400 and refused.get_json() == {"message": message}
    broken = api(
        "POST",
        "/c/bank/META/content",
        data={"photo": (io.BytesIO(photo), "p.jpg"), "metadata": "{nope"},
        content_type="multipart/form-data",
    )
    assert broken.get_json() == {"message": "metadata form field must be valid JSON"}


def test_bridge_photo_hashes_as_hma2_does(api: Api) -> None:
    """HMA 2.0's own API test adds this photo and expects this exact PDQ and id shape."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    # shared/ sits beside the repository (CI, /work/main) or beside its worktree folder.
    candidates = [base / "shared/data/pdq-bridge-mods/aaa-orig.jpg" for base in repo.parents[:2]]
    photo = next((path for path in candidates if path.exists()), None)
    if photo is None:
        pytest.skip("the shared reference photos are not beside the repository")
    api("POST", "/c/banks", json={"name": "NEW_BANK"})
    response = api(
        "POST",
        "/c/bank/NEW_BANK/content?content_type=photo",
        data={"photo": (io.BytesIO(photo.read_bytes()), "aaa-orig.jpg")},
        content_type="multipart/form-data",
    )
    body = response.get_json()
    assert body == {"id": body["id"], "signals": {"pdq": PDQ}}
    found = api("GET", f"/m/raw_lookup?signal_type=pdq&signal={PDQ}")
    assert found.get_json() == {"matches": [body["id"]]}


def test_type_listings(api: Api, runtime: Runtime) -> None:
    signal_types = api("GET", "/c/signal_type").get_json()
    assert {"name": "pdq", "enabled_ratio": 1.0} in signal_types
    assert {s["name"] for s in signal_types} == set(runtime.registry.signal_types)
    installed = {ct for r in runtime.registry.signal_types.values() for ct in r.applies_to()}
    assert {"photo", "video", "text", "url"} <= installed
    assert api("GET", "/c/content_type").get_json() == [
        {"name": name, "enabled": True} for name in sorted(installed)
    ]


def test_signal_type_ratio_is_set_and_read_back(api: Api, client: Any, tokens: Tokens) -> None:
    """``PUT /c/signal_type/<name>``: HMA 2.0's 204 with no body; its 500s are 400s here."""
    changed = api("PUT", "/c/signal_type/pdq", json={"enabled_ratio": 0.25})
    assert changed.status_code == 204 and changed.get_data() == b""
    assert {"name": "pdq", "enabled_ratio": 0.25} in api("GET", "/c/signal_type").get_json()
    assert api("PUT", "/c/signal_type/pdq", json={"enabled_ratio": "0.5"}).status_code == 204
    assert {"name": "pdq", "enabled_ratio": 0.5} in api("GET", "/c/signal_type").get_json()
    for body, path, message in [
        ({}, "pdq", "enabled_ratio is required"),
        ({"enabled_ratio": "half"}, "pdq", "Invalid float: 'half'"),
        (
            {"enabled_ratio": 2},
            "pdq",
            "Invalid enabled ratio 2.0. Must be in the range 0.0-1.0 inclusive.",
        ),
        ({"enabled_ratio": 1}, "nope", "Unknown signal type nope"),
    ]:
        refused = api("PUT", f"/c/signal_type/{path}", json=body)
        assert refused.status_code == 400 and refused.get_json() == {"message": message}
    read = Tokens.header(tokens.read)
    assert (
        client.put("/c/signal_type/pdq", json={"enabled_ratio": 1}, headers=read).status_code == 403
    )
    # Only reported, as in HMA 2.0: a pdq lookup still matches.
    api("POST", "/c/banks", json={"name": "RATIO"})
    api("PUT", "/c/signal_type/pdq", json={"enabled_ratio": 0})
    added = api("POST", "/c/bank/RATIO/signal", json={"pdq": PDQ}).get_json()
    assert api("GET", f"/m/raw_lookup?signal_type=pdq&signal={PDQ}").get_json() == {
        "matches": [added["id"]]
    }


def test_signal_type_index_status(api: Api) -> None:
    empty = api("GET", "/c/signal_type/index?signal_type=pdq")
    assert empty.get_json() == {
        "pdq": {
            "db_size": 0,
            "index_size": 0,
            "index_out_of_date": False,
            "newest_db_item": -1,
            "index_built_to": -1,
        }
    }
    api("POST", "/c/banks", json={"name": "INDEXED"})
    before = int(time.time())
    for _ in range(2):  # the same hash twice is one entry
        api("POST", "/c/bank/INDEXED/signal", json={"pdq": PDQ})
    api("POST", "/c/bank/INDEXED/signal", json={"video_md5": MD5})
    status = api("GET", "/c/signal_type/index").get_json()
    assert set(status) == set(api("GET", "/m/index/status").get_json())
    pdq = status["pdq"]
    assert pdq["newest_db_item"] >= before and pdq["index_built_to"] == pdq["newest_db_item"]
    assert pdq == {
        "db_size": 1,
        "index_size": 1,
        "index_out_of_date": False,
        "newest_db_item": pdq["newest_db_item"],
        "index_built_to": pdq["newest_db_item"],
    }
    assert status["video_md5"]["db_size"] == 1
    unknown = api("GET", "/c/signal_type/index?signal_type=nope")
    assert unknown.status_code == 400
    assert unknown.get_json() == {"message": "No such signal type 'nope'"}


def test_clients_quirks_are_tolerated(live_server: str, tokens: Tokens) -> None:
    """A base URL ending in "/" joined with "/c/banks"; a JSON content type on a bodiless
    GET; POST parameters in the query string. Sent over a real socket, path as written."""
    host, port = live_server.removeprefix("http://").split(":")

    def call(method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request(
                method, path, headers={**Tokens.header(tokens.admin), **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    assert call("POST", "//c/banks?name=QUIRKS&enabled_ratio=1")[0] == 201
    status, listed = call("GET", "//c/banks", {"Content-Type": "application/json"})
    assert status == 200 and listed == [{"name": "QUIRKS", "matching_enabled_ratio": 1.0}]
    status, shown = call("GET", "/c/bank/QUIRKS", {"Content-Type": "application/json"})
    assert status == 200 and shown == {"name": "QUIRKS", "matching_enabled_ratio": 1.0}
