"""HMA 2.0 compatibility: status, hashing and matching routes, their exact answers and the
semantics they share with this project's own routes."""

from __future__ import annotations

import hashlib
import io
import random
import time
from typing import Any

import pytest
from sqlalchemy import text

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, make_photo
from tests.http_fixtures import loopback_server, serve_bytes
from tests.test_compat_hma2_banks import PDQ, Api


def flip(signal: str, bits: int, seed: int = 0) -> str:
    value = int(signal, 16)
    for bit in random.Random(seed).sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


@pytest.fixture
def api(client: Any, tokens: Tokens) -> Api:
    return Api(client, tokens.admin)


def _add(api: Api, bank: str, signal: str = PDQ) -> int:
    response = api("POST", f"/c/bank/{bank}/signal", json={"pdq": signal})
    assert response.status_code == 200, response.get_json()
    content_id: int = response.get_json()["id"]
    return content_id


def test_status_answers_plain_text(client: Any, runtime: Runtime) -> None:
    runtime.indexes.refresh_interval = 0
    live = client.get("/status/live")
    assert (live.status_code, live.data, live.mimetype) == (200, b"I-AM-ALIVE", "text/plain")
    alive = client.get("/status")
    assert (alive.status_code, alive.data) == (200, b"I-AM-ALIVE")
    # The change log cannot be read: the index can no longer be kept fresh.
    with runtime.store.transaction() as session:
        session.execute(text("ALTER TABLE bank_change RENAME TO bank_change_away"))
    try:
        stale = client.get("/status")
        assert (stale.status_code, stale.data) == (503, b"INDEX-STALE")
    finally:
        with runtime.store.transaction() as session:
            session.execute(text("ALTER TABLE bank_change_away RENAME TO bank_change"))
    assert client.get("/status").data == b"I-AM-ALIVE"


def test_status_is_not_loaded_until_the_index_loads(app: Any, runtime: Runtime) -> None:
    with runtime.store.transaction() as session:
        session.execute(text("ALTER TABLE bank_change RENAME TO bank_change_away"))
    try:
        response = app.test_client().get("/status")
        assert (response.status_code, response.data) == (503, b"INDEX-NOT-LOADED")
    finally:
        with runtime.store.transaction() as session:
            session.execute(text("ALTER TABLE bank_change_away RENAME TO bank_change"))
    deadline = time.monotonic() + 10
    while app.test_client().get("/status").data != b"I-AM-ALIVE":
        assert time.monotonic() < deadline, "the index never loaded after the failure"
        time.sleep(0.1)


def test_raw_lookup_and_lookup_by_signal_shapes(api: Api) -> None:
    api("POST", "/c/banks", json={"name": "BANK_A"})
    api("POST", "/c/banks", json={"name": "BANK_B"})
    first, second = _add(api, "BANK_A"), _add(api, "BANK_A", flip(PDQ, 3))
    other = _add(api, "BANK_B", flip(PDQ, 5, seed=1))
    query = {"signal_type": "pdq", "signal": PDQ}

    raw = api("GET", "/m/raw_lookup", query_string=query).get_json()
    assert sorted(raw["matches"]) == sorted([first, second, other]) and set(raw) == {"matches"}
    with_distance = api(
        "GET", "/m/raw_lookup", query_string={**query, "include_distance": "true"}
    ).get_json()
    assert sorted(with_distance["matches"], key=lambda m: m["bank_content_id"]) == [
        {"bank_content_id": first, "distance": "0"},
        {"bank_content_id": second, "distance": "3"},
        {"bank_content_id": other, "distance": "5"},
    ]
    only_b = api("GET", "/m/raw_lookup", query_string={**query, "banks": "BANK_B"}).get_json()
    assert only_b == {"matches": [other]}

    flat = api("GET", "/m/lookup", query_string=query).get_json()
    assert flat == {
        "BANK_A": [
            {"bank_content_id": first, "distance": "0"},
            {"bank_content_id": second, "distance": "3"},
        ],
        "BANK_B": [{"bank_content_id": other, "distance": "5"}],
    }
    filtered = api("GET", "/m/lookup", query_string={**query, "banks": "BANK_B,GONE"})
    assert filtered.get_json() == {"BANK_B": [{"bank_content_id": other, "distance": "5"}]}
    far = api("GET", "/m/lookup", query_string={**query, "signal": flip(PDQ, 60, seed=9)})
    assert far.get_json() == {}

    for params, message in [
        ({"signal_type": "pdq"}, "Either url or both signal and signal_type are required"),
        ({"signal_type": "nope", "signal": "x"}, "No such SignalType 'nope'"),
        ({"signal_type": "pdq", "signal": "zz"}, "invalid signal"),
    ]:
        response = api("GET", "/m/lookup", query_string=params)
        assert response.status_code == 400 and message in response.get_json()["message"]
    assert api("GET", "/m/raw_lookup", query_string={"signal": PDQ}).get_json() == {
        "message": "signal_type is required"
    }


def test_lookups_share_kill_switches_and_thresholds_with_our_routes(api: Api) -> None:
    api("POST", "/c/banks", json={"name": "SWITCHED"})
    content_id = _add(api, "SWITCHED")
    query = {"signal_type": "pdq", "signal": PDQ}
    assert list(api("GET", "/m/lookup", query_string=query).get_json()) == ["SWITCHED"]

    later = int(time.time()) + 3600
    api("PUT", f"/c/bank/SWITCHED/content/{content_id}", json={"disable_until_ts": later})
    assert api("GET", "/m/lookup", query_string=query).get_json() == {}
    assert api("GET", "/m/raw_lookup", query_string=query).get_json() == {"matches": []}
    assert api("GET", "/lookup", query_string=query).get_json()["matches"] == []
    # A time already past switches it back on by itself.
    api("PUT", f"/c/bank/SWITCHED/content/{content_id}", json={"disable_until_ts": 2})
    assert list(api("GET", "/m/lookup", query_string=query).get_json()) == ["SWITCHED"]

    api("PATCH", "/banks/SWITCHED", json={"thresholds": {"pdq": 2}})
    near = {"signal_type": "pdq", "signal": flip(PDQ, 3)}
    assert api("GET", "/m/lookup", query_string=near).get_json() == {}
    api("PATCH", "/banks/SWITCHED", json={"enabled": False})
    assert api("GET", "/m/raw_lookup", query_string=query).get_json() == {"matches": []}


def test_identical_hashes_in_a_bank_all_match(api: Api) -> None:
    """HMA 2.0's PDQ index matched nothing when it held a few identical hashes."""
    api("POST", "/c/banks", json={"name": "SAME"})
    ids = sorted(_add(api, "SAME") for _ in range(3))
    found = api("GET", "/m/lookup", query_string={"signal_type": "pdq", "signal": PDQ})
    assert sorted(m["bank_content_id"] for m in found.get_json()["SAME"]) == ids


def test_added_signal_is_matchable_within_a_second(
    api: Api, worker_runtime: Runtime, tokens: Tokens
) -> None:
    """Added through one API process, looked up through another (its own warm index)."""
    from hma_framework.web.app import create_app

    other = Api(create_app(worker_runtime).test_client(), tokens.read)
    worker_runtime.indexes.refresh()  # warm, as a serving process is
    api("POST", "/c/banks", json={"name": "FRESH"})
    content_id = _add(api, "FRESH", flip(PDQ, 1, seed=4))
    added_at = time.monotonic()
    query = {"signal_type": "pdq", "signal": flip(PDQ, 1, seed=4)}
    while other("GET", "/m/raw_lookup", query_string=query).get_json()["matches"] != [content_id]:
        assert time.monotonic() - added_at < 1.0, "not matchable within a second"
        time.sleep(0.02)
    # The process that added it answers at once.
    assert api("GET", "/m/raw_lookup", query_string=query).get_json()["matches"] == [content_id]


def test_coin_flip_is_seeded_per_lookup(api: Api) -> None:
    api("POST", "/c/banks", json={"name": "HALF", "enabled_ratio": 0.5})
    _add(api, "HALF")
    query = {"signal_type": "pdq", "signal": PDQ}
    for seed in ("content-1", "content-2", "content-3", "content-4", "content-5", "7"):
        expected = random.Random(seed).random() <= 0.5
        for _ in range(2):  # the same seed always gets the same answer
            found = api("GET", "/m/lookup", query_string={**query, "seed": seed}).get_json()
            assert ("HALF" in found) is expected, seed
    assert api("POST", "/c/banks", json={"name": "NEVER", "enabled_ratio": 0}).status_code == 201
    _add(api, "NEVER")
    for seed in ("a", "b", "c"):
        found = api("GET", "/m/lookup", query_string={**query, "seed": seed}).get_json()
        assert "NEVER" not in found


def test_lookup_by_url_and_upload_are_nested_by_signal_type(api: Api, runtime: Runtime) -> None:
    photo = make_photo(seed=11)
    api("POST", "/c/banks", json={"name": "PHOTOS"})
    added = api(
        "POST",
        "/c/bank/PHOTOS/content",
        data={"photo": (io.BytesIO(photo), "p.jpg")},
        content_type="multipart/form-data",
    ).get_json()
    hashed = added["signals"]["pdq"]
    expected = {"pdq": {"PHOTOS": [{"bank_content_id": added["id"], "distance": "0"}]}}
    with loopback_server() as server:
        url = server.add("/p.jpg", serve_bytes(photo, content_type="image/jpeg"))
        by_url = api("GET", "/m/lookup", query_string={"url": url})
        assert by_url.status_code == 200, by_url.get_json()
        assert by_url.get_json() == expected
        flat = api("GET", "/m/lookup", query_string={"url": url, "signal_type": "pdq"})
        assert flat.get_json() == expected["pdq"]
        assert api("GET", "/h/hash", query_string={"url": url}).get_json() == {"pdq": hashed}
        typed = api(
            "GET", "/h/hash", query_string={"url": url, "content_type": "photo", "types": "pdq"}
        )
        assert typed.get_json() == {"pdq": hashed}
        bad_type = api("GET", "/h/hash", query_string={"url": url, "types": "video_md5"})
        assert bad_type.status_code == 400
        assert bad_type.get_json() == {
            "message": "signal type 'video_md5' doesn't exist or is disabled"
        }
        # Added by URL too, with metadata in the JSON body.
        by_url_add = api(
            "POST",
            f"/c/bank/PHOTOS/content?url={url}",
            json={"metadata": {"content_id": "u-1"}, "note": "from a URL"},
        )
        assert by_url_add.get_json()["signals"] == {"pdq": hashed}
    uploaded = api(
        "POST",
        "/m/lookup",
        data={"photo": (io.BytesIO(photo), "x")},
        content_type="multipart/form-data",
    )
    assert set(uploaded.get_json()["pdq"]["PHOTOS"][0]) == {"bank_content_id", "distance"}
    assert len(uploaded.get_json()["pdq"]["PHOTOS"]) == 2
    posted = api(
        "POST",
        "/h/hash",
        data={"photo": (io.BytesIO(photo), "x")},
        content_type="multipart/form-data",
    )
    assert posted.get_json() == {"pdq": hashed}

    video = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 20
    video_hash = api(
        "POST",
        "/h/hash",
        data={"video": (io.BytesIO(video), "v.mp4")},
        content_type="multipart/form-data",
    )
    assert video_hash.get_json() == {"video_md5": hashlib.md5(video).hexdigest()}
    for data, message in [
        ({}, "Missing multipart/form-data file upload"),
        ({"photo": (io.BytesIO(photo), "a"), "video": (io.BytesIO(video), "b")}, "Only one file"),
    ]:
        response = api("POST", "/h/hash", data=data, content_type="multipart/form-data")
        assert response.status_code == 400 and message in response.get_json()["message"]
    assert api("GET", "/h/hash").get_json() == {"message": "url is required"}


def test_compare_and_index_status(api: Api, runtime: Runtime) -> None:
    compared = api("POST", "/m/compare", json={"pdq": [PDQ, flip(PDQ, 9)]})
    assert compared.get_json() == {"pdq": [True, {"distance": 9}]}
    far = api("POST", "/m/compare", json={"pdq": [PDQ, flip(PDQ, 90)]})
    assert far.get_json() == {"pdq": [False, {"distance": 90}]}
    for body, message in [
        ([1], "Request input was not a dict"),
        ({"pdq": PDQ}, "Comparison hashes for pdq was not a list"),
        ({"pdq": [PDQ]}, "Comparison hash list length must be exactly 2"),
        ({"nope": [PDQ, PDQ]}, "No such SignalType 'nope'"),
        ({"pdq": [PDQ, "zz"]}, "Invalid pdq hash"),
    ]:
        response = api("POST", "/m/compare", json=body)
        assert response.status_code == 400 and message in response.get_json()["message"]

    Banks(runtime.store).create_bank("STATUS")
    Banks(runtime.store).add_member("STATUS", NewMember(signals=(("pdq", PDQ),)))
    before = int(time.time())
    status = api("GET", "/m/index/status").get_json()
    assert set(status) == set(runtime.registry.signal_types)
    assert status["pdq"]["present"] is True and status["pdq"]["size"] == 1
    assert status["pdq"]["built_to"] >= before
    assert set(status["pdq"]) == {"present", "built_to", "size"}
    one = api("GET", "/m/index/status", query_string={"signal_type": "pdq"}).get_json()
    assert list(one) == ["pdq"]
    assert api("GET", "/m/index/status?signal_type=nope").get_json() == {
        "message": "No such signal type 'nope'"
    }
