"""Banks, members and index queries over HTTP: every endpoint and error."""

from __future__ import annotations

import base64
import io
import json
import random
from typing import Any

import pytest

from hma_framework.testing import Tokens, make_photo

BASE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def flip(signal: str, bits: int, seed: int = 0) -> str:
    value = int(signal, 16)
    for bit in random.Random(seed).sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


class Client:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = Tokens.header(token)

    def __getattr__(self, method: str) -> Any:
        call = getattr(self.client, method)
        return lambda path, **kw: call(
            path, headers={**self.headers, **kw.pop("headers", {})}, **kw
        )


@pytest.fixture
def admin(client: Any, tokens: Tokens) -> Client:
    return Client(client, tokens.admin)


@pytest.fixture
def reader(client: Any, tokens: Tokens) -> Client:
    return Client(client, tokens.read)


def test_bank_lifecycle_and_errors(admin: Client, reader: Client) -> None:
    created = admin.post(
        "/banks",
        json={
            "name": "known-bad",
            "description": "removed",
            "tags": ["csam"],
            "thresholds": {"pdq": 40},
        },
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["thresholds"] == {"pdq": 40}
    assert admin.post("/banks", json={"name": "known-bad"}).status_code == 409
    assert reader.post("/banks", json={"name": "other"}).status_code == 403
    for body, message in [
        ({"name": "has space"}, "name must be"),
        ({"name": "t", "thresholds": {"pdq": 64}}, "from 0 to 63"),
        ({"name": "t", "thresholds": {"pdq": -1}}, "from 0 to 63"),
        ({"name": "t", "thresholds": {"video_md5": 3}}, "from 0 to 0"),
        ({"name": "t", "thresholds": {"nope": 3}}, "unknown signal type"),
        ({"name": "t", "tags": "x"}, "'tags' must be a list"),
    ]:
        response = admin.post("/banks", json=body)
        assert response.status_code == 400 and message in response.get_json()["message"], body

    assert [b["name"] for b in reader.get("/banks").get_json()["banks"]] == ["known-bad"]
    patched = admin.patch("/banks/known-bad", json={"enabled": False, "thresholds": {"pdq": 10}})
    assert patched.get_json()["enabled"] is False and patched.get_json()["thresholds"] == {
        "pdq": 10
    }
    assert admin.patch("/banks/missing", json={}).status_code == 404
    assert reader.get("/banks/missing").status_code == 404
    assert admin.delete("/banks/known-bad").status_code == 204
    assert reader.get("/banks/known-bad").status_code == 404


def test_members_by_hash_batch_and_media(admin: Client, reader: Client) -> None:
    admin.post("/banks", json={"name": "b"})
    one = admin.post(
        "/banks/b/members",
        json={
            "signal_type": "pdq",
            "signal_value": BASE,
            "content_id": "c-1",
            "notes": "n",
            "tags": ["t1"],
        },
    )
    assert one.status_code == 201, one.get_json()
    member = one.get_json()
    assert member["signals"] == [{"signal_type": "pdq", "signal_value": BASE}]
    assert (member["content_id"], member["tags"], member["enabled"]) == ("c-1", ["t1"], True)

    bad = admin.post("/banks/b/members", json={"signal_type": "pdq", "signal_value": "zz"})
    assert bad.status_code == 400 and "not a valid pdq hash" in bad.get_json()["message"]

    rows = [{"signal_type": "pdq", "signal_value": flip(BASE, 64, i)} for i in range(5)]
    rows.insert(2, {"signal_type": "pdq", "signal_value": "short"})
    rows.insert(4, {"signal_type": "md6", "signal_value": "a"})
    batch = admin.post("/banks/b/members", json={"members": rows}).get_json()
    assert [a["index"] for a in batch["added"]] == [0, 1, 3, 5, 6]
    assert [e["index"] for e in batch["errors"]] == [2, 4]
    assert "unknown signal_type 'md6'" in batch["errors"][1]["message"]

    photo = make_photo(seed=9)
    by_bytes = admin.post(
        "/banks/b/members",
        json={"content_type": "photo", "content_bytes": base64.b64encode(photo).decode()},
    )
    assert by_bytes.status_code == 201, by_bytes.get_json()
    [signal] = by_bytes.get_json()["signals"]
    multipart = admin.post(
        "/banks/b/members",
        data={"content_type": "photo", "tags": "a,b", "file": (io.BytesIO(photo), "p.jpg")},
        content_type="multipart/form-data",
    )
    assert multipart.status_code == 201, multipart.get_json()
    assert multipart.get_json()["signals"] == [signal] and multipart.get_json()["tags"] == [
        "a",
        "b",
    ]
    junk = admin.post(
        "/banks/b/members",
        json={"content_type": "photo", "content_bytes": base64.b64encode(b"not a photo").decode()},
    )
    assert junk.status_code == 400 and "cannot hash" in junk.get_json()["message"]
    assert admin.post("/banks/nope/members", json=rows[0]).status_code == 404

    page = reader.get("/banks/b/members?limit=3").get_json()
    assert len(page["members"]) == 3 and page["next_cursor"]
    rest = reader.get(f"/banks/b/members?limit=100&cursor={page['next_cursor']}").get_json()
    assert len(page["members"]) + len(rest["members"]) == 8 and rest["next_cursor"] is None
    assert [
        m["content_id"] for m in reader.get("/banks/b/members?tag=t1").get_json()["members"]
    ] == ["c-1"]
    assert len(reader.get("/banks/b/members?signal_type=video_md5").get_json()["members"]) == 0
    assert reader.get("/banks/b/members?enabled=maybe").status_code == 400

    member_id = member["id"]
    updated = admin.patch(
        f"/banks/b/members/{member_id}", json={"notes": "x", "tags": [], "enabled": False}
    )
    assert updated.get_json()["notes"] == "x" and updated.get_json()["enabled"] is False
    assert len(reader.get("/banks/b/members?enabled=false").get_json()["members"]) == 1
    assert reader.get(f"/banks/b/members/{member_id}").status_code == 200
    assert admin.delete(f"/banks/b/members/{member_id}").status_code == 204
    assert reader.get(f"/banks/b/members/{member_id}").status_code == 404


def test_lookup_kill_switches_thresholds_and_shared_hashes(admin: Client, reader: Client) -> None:
    admin.post("/banks", json={"name": "loose", "thresholds": {"pdq": 52}, "tags": ["x"]})
    admin.post("/banks", json={"name": "tight", "thresholds": {"pdq": 10}})
    loose = admin.post(
        "/banks/loose/members",
        json={"signal_type": "pdq", "signal_value": BASE, "content_id": "orig", "tags": ["seen"]},
    )
    admin.post("/banks/tight/members", json={"signal_type": "pdq", "signal_value": BASE})

    def lookup(signal: str, **params: str) -> list[dict[str, Any]]:
        response = reader.get(
            "/lookup", query_string={"signal_type": "pdq", "signal": signal, **params}
        )
        assert response.status_code == 200, response.get_json()
        matches: list[dict[str, Any]] = response.get_json()["matches"]
        return matches

    near, middle, far = flip(BASE, 5), flip(BASE, 40, 1), flip(BASE, 60, 2)
    assert [m["bank"] for m in lookup(near)] == ["loose", "tight"]  # one hash, two banks
    [found] = lookup(middle)
    assert found == {
        "bank": "loose",
        "member_id": loose.get_json()["id"],
        "content_id": "orig",
        "tags": ["seen"],
        "bank_tags": ["x"],
        "notes": "",
        "signal_type": "pdq",
        "signal": BASE,
        "distance": 40,
    }
    assert lookup(far) == []
    assert [m["bank"] for m in lookup(near, banks="tight")] == ["tight"]

    admin.patch("/banks/loose", json={"enabled": False})
    assert [m["bank"] for m in lookup(near)] == ["tight"]  # the very next lookup
    admin.patch("/banks/loose", json={"enabled": True})
    admin.patch(f"/banks/loose/members/{loose.get_json()['id']}", json={"enabled": False})
    assert [m["bank"] for m in lookup(near)] == ["tight"]
    admin.patch("/banks/tight", json={"thresholds": {"pdq": 2}})
    assert lookup(near) == []

    for params, message in [
        ({"signal_type": "pdq", "signal": "xyz"}, "not a valid pdq hash"),
        ({"signal_type": "nope", "signal": BASE}, "unknown signal_type"),
        ({"signal_type": "pdq"}, "needs signal_type and signal"),
    ]:
        response = reader.get("/lookup", query_string=params)
        assert response.status_code == 400 and message in response.get_json()["message"]


def test_lookup_media_returns_signals_and_matches(admin: Client, reader: Client) -> None:
    photo = make_photo(seed=21)
    encoded = base64.b64encode(photo).decode()
    admin.post("/banks", json={"name": "p"})
    admin.post("/banks/p/members", json={"content_type": "photo", "content_bytes": encoded})
    response = reader.post("/lookup", json={"content_type": "photo", "content_bytes": encoded})
    body = response.get_json()
    assert response.status_code == 200, body
    [signal] = body["signals"]
    assert signal["signal_type"] == "pdq" and signal["quality"] >= 50
    assert [(m["bank"], m["distance"], m["signal"]) for m in body["matches"]] == [
        ("p", 0, signal["signal_value"])
    ]
    assert reader.post("/lookup", json={"content_type": "photo"}).status_code == 400


def test_compare(reader: Client) -> None:
    near = flip(BASE, 12)
    response = reader.post(
        "/compare", json={"signal_type": "pdq", "signal_a": BASE, "signal_b": near}
    )
    assert response.get_json() == {"signal_type": "pdq", "match": True, "distance": 12}
    strict = reader.post(
        "/compare", json={"signal_type": "pdq", "signal_a": BASE, "signal_b": near, "threshold": 5}
    )
    assert strict.get_json()["match"] is False
    md5 = reader.post(
        "/compare", json={"signal_type": "video_md5", "signal_a": "a" * 32, "signal_b": "b" * 32}
    )
    assert md5.get_json()["match"] is False
    assert (
        reader.post(
            "/compare", json={"signal_type": "pdq", "signal_a": "x", "signal_b": BASE}
        ).status_code
        == 400
    )


def test_ndjson_import_export_round_trip_over_http(admin: Client, reader: Client) -> None:
    admin.post("/banks", json={"name": "io"})
    lines = [
        json.dumps(
            {
                "signal_type": "pdq",
                "signal_value": flip(BASE, 64, i),
                "tags": ["t"],
                "notes": f"n{i}",
                "content_id": f"c{i}",
            }
        )
        for i in range(3000)
    ]
    lines.insert(10, "{not json")
    lines.insert(20, json.dumps({"signal_type": "pdq", "signal_value": "bad"}))
    strict = admin.post("/banks/io/import?strict=true", data="\n".join(lines))
    assert strict.status_code == 400 and strict.get_json()["invalid"] == 2
    assert reader.get("/banks/io").get_json()["member_count"] == 0
    report = admin.post("/banks/io/import", data="\n".join(lines)).get_json()
    assert report["added"] == 3000 and [e["line"] for e in report["errors"]] == [11, 21]
    exported = reader.get("/banks/io/export").get_data(as_text=True).splitlines()
    assert sorted(exported) == sorted(
        line for line in lines if "not json" not in line and '"bad"' not in line
    )
