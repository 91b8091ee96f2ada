"""The Content Submissions API end to end: real HTTP, real Redis, real workers, both databases."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, make_photo, run_jobs


class Api:
    """A client for the live server with a submit/read key."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = Tokens.header(token)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=self.headers, timeout=10)

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.base + path, params=params, headers=self.headers, timeout=10)

    def content(self, content_id: str) -> dict[str, Any]:
        response = self.get(f"/content/{content_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def api(live_server: str, runtime: Runtime) -> Api:
    token = runtime.api_keys.create("platform", ["submit", "read"]).token
    return Api(live_server, token)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pdq_of(runtime: Runtime, photo: bytes, tmp_path: Path) -> str:
    path = tmp_path / "reference.jpg"
    path.write_bytes(photo)
    return runtime.hashers["pdq"].hash_file(path).value


def test_photo_bytes_are_hashed_matched_and_actioned(
    api: Api, runtime: Runtime, worker_runtime: Runtime, tmp_path: Path
) -> None:
    photo = make_photo(seed=1)
    Banks(runtime.store).create_bank("known", tags=["csam"])
    member = Banks(runtime.store).add_member(
        "known", NewMember(signals=(("pdq", pdq_of(runtime, photo, tmp_path)),))
    )
    response = api.post(
        "/submit/bytes/",
        {
            "content_id": "p-1",
            "content_type": "photo",
            "content_bytes": b64(photo),
            "additional_fields": ["uploader:42"],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"content_id": "p-1", "submit_successful": True}
    assert api.content("p-1")["status"] == "submitted"
    assert list((runtime.settings.data_path / "media").iterdir()), "media waits in the store"

    run_jobs(worker_runtime)

    record = api.content("p-1")
    assert record["status"] == "actioned", record
    assert record["additional_fields"] == ["uploader:42"]
    assert all(record["stages"][stage] for stage in ("submitted", "hashed", "matched", "actioned"))
    [signal] = record["signals"]
    assert signal["signal_type"] == "pdq" and signal["status"] == "ok"
    assert isinstance(signal["quality"], int) and signal["quality"] >= 50
    [match] = api.get("/content/p-1/matches").json()["matches"]
    assert (match["bank"], match["member_id"], match["distance"]) == ("known", member, 0)
    assert not list((runtime.settings.data_path / "media").iterdir()), "media deleted once hashed"


def test_unmatched_photo_ends_as_no_match(api: Api, worker_runtime: Runtime) -> None:
    api.post(
        "/submit/bytes/",
        {"content_id": "p-2", "content_type": "photo", "content_bytes": b64(make_photo(seed=2))},
    )
    run_jobs(worker_runtime)
    record = api.content("p-2")
    assert record["status"] == "no_match" and record["match_count"] == 0
    assert record["stages"]["actioned"] is None


def test_hash_submission_matches_without_the_hash_queue(
    api: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("hashes")
    stored = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    banks.add_member("hashes", NewMember(signals=(("pdq", stored),)))
    near = stored[:-1] + "3"  # one bit away
    response = api.post(
        "/submit/hash/",
        {
            "content_id": "h-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": near.upper(),
        },
    )
    assert response.status_code == 200, response.text
    record = api.content("h-1")
    assert record["status"] == "matched"  # matched before the response, in the API process
    assert record["signals"] == [
        {"signal_type": "pdq", "signal_value": near, "quality": None, "status": "ok"}
    ]
    assert runtime.queues["hash"].count == 0 and runtime.queues["match"].count == 0
    assert runtime.queues["action"].count == 1
    [match] = api.get("/content/h-1/matches").json()["matches"]
    assert match["distance"] == 1 and match["member_signal"] == stored
    run_jobs(worker_runtime)
    assert api.content("h-1")["status"] == "actioned"

    miss = api.post(
        "/submit/hash/",
        {
            "content_id": "h-2",
            "content_type": "video",
            "signal_type": "video_md5",
            "signal_value": "0" * 32,
        },
    )
    assert miss.status_code == 200
    assert api.content("h-2")["status"] == "no_match"
    assert runtime.queues["action"].count == 0


def test_video_bytes_are_hashed_as_video(
    api: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 100
    Banks(runtime.store).create_bank("videos")
    Banks(runtime.store).add_member(
        "videos", NewMember(signals=(("video_md5", hashlib.md5(video).hexdigest()),))
    )
    api.post(
        "/submit/bytes/",
        {"content_id": "v-1", "content_type": "video", "content_bytes": b64(video)},
    )
    run_jobs(worker_runtime)
    record = api.content("v-1")
    assert [s["signal_type"] for s in record["signals"]] == ["video_md5"]
    assert record["signals"][0]["signal_value"] == hashlib.md5(video).hexdigest()
    assert record["status"] == "actioned"


def test_put_url_upload_flow(api: Api, worker_runtime: Runtime, runtime: Runtime) -> None:
    response = api.post(
        "/submit/put-url/",
        {"content_id": "u-1", "content_type": "photo", "file_type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content_id"] == "u-1" and body["file_type"] == "image/jpeg"
    presigned = body["presigned_url"]
    assert presigned.startswith(api.base + "/upload/")
    record = api.content("u-1")
    assert record["status"] == "awaiting_upload" and record["upload_expires_at"]

    upload = requests.put(presigned, data=make_photo(seed=3), timeout=10)  # no API key needed
    assert upload.status_code == 200, upload.text
    again = requests.put(presigned, data=make_photo(seed=4), timeout=10)
    assert again.status_code == 409 and "already used" in again.json()["message"]

    run_jobs(worker_runtime)
    assert api.content("u-1")["status"] == "no_match"
    tampered = requests.put(presigned[:-3] + "abc", data=b"x", timeout=10)
    assert tampered.status_code == 403


def test_expired_upload_url_is_refused_and_content_expires(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    real_time = time.time
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: real_time() - 3600)
    presigned = api.post(
        "/submit/put-url/", {"content_id": "u-2", "content_type": "photo", "file_type": "image/png"}
    ).json()["presigned_url"]
    monkeypatch.undo()
    response = requests.put(presigned, data=make_photo(seed=5), timeout=10)
    assert response.status_code == 410 and "expired" in response.json()["message"]

    from sqlalchemy import update

    from hma_framework.pipeline.reconcile import reconcile_runtime
    from hma_framework.store.tables import ContentRow, utcnow

    with runtime.store.transaction() as session:
        session.execute(update(ContentRow).values(upload_expires_at=utcnow()))
    assert reconcile_runtime(runtime)["expired_uploads"] == 1
    record = api.content("u-2")
    assert record["status"] == "failed" and "expired" in record["error"]


def test_resubmission_rules(api: Api, runtime: Runtime) -> None:
    first = {
        "content_id": "r-1",
        "content_type": "photo",
        "signal_type": "pdq",
        "signal_value": "a" * 64,
        "additional_fields": ["a"],
    }
    assert api.post("/submit/hash/", first).status_code == 200
    submitted_at = api.content("r-1")["submissions"]
    assert len(submitted_at) == 1

    assert api.post("/submit/hash/", first).status_code == 200  # identical: no new work
    assert len(api.content("r-1")["submissions"]) == 1

    changed = {**first, "additional_fields": ["b"]}
    conflict = api.post("/submit/hash/", changed)
    assert conflict.status_code == 409 and "force_resubmit" in conflict.json()["message"]
    assert api.content("r-1")["additional_fields"] == ["a"]

    forced = api.post("/submit/hash/", {**changed, "force_resubmit": True})
    assert forced.status_code == 200
    record = api.content("r-1")
    assert record["additional_fields"] == ["b"] and len(record["submissions"]) == 2
    assert record["submissions"][1]["submitted_at"] > record["submissions"][0]["submitted_at"]

    other_method = api.post(
        "/submit/bytes/",
        {"content_id": "r-1", "content_type": "photo", "content_bytes": b64(make_photo())},
    )
    assert other_method.status_code == 409
    assert not list((runtime.settings.data_path / "media").iterdir()), "refused media not kept"


GOOD = {"content_id": "x", "content_type": "photo"}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/submit/hash/",
            {"content_type": "photo", "signal_type": "pdq", "signal_value": "a" * 64},
            "missing required field 'content_id'",
        ),
        (
            "/submit/hash/",
            {**GOOD, "content_id": 7, "signal_type": "pdq", "signal_value": "a" * 64},
            "field 'content_id' must be a string",
        ),
        (
            "/submit/hash/",
            {**GOOD, "content_type": "audio", "signal_type": "pdq", "signal_value": "a" * 64},
            "content_type must be one of photo, video",
        ),
        (
            "/submit/hash/",
            {**GOOD, "signal_type": "tlsh", "signal_value": "a"},
            "unknown signal_type 'tlsh'",
        ),
        (
            "/submit/hash/",
            {**GOOD, "signal_type": "pdq", "signal_value": "not-a-hash"},
            "signal_value is not a valid pdq hash",
        ),
        (
            "/submit/hash/",
            {**GOOD, "signal_type": "pdq", "signal_value": "a" * 63},
            "signal_value is not a valid pdq hash",
        ),
        (
            "/submit/hash/",
            {**GOOD, "signal_type": "video_md5", "signal_value": "a" * 32},
            "does not apply to photo content",
        ),
        (
            "/submit/hash/",
            {**GOOD, "signal_type": "pdq", "signal_value": "a" * 64, "force_resubmit": "yes"},
            "field 'force_resubmit' must be true or false",
        ),
        (
            "/submit/bytes/",
            {**GOOD, "content_bytes": "%%%not base64"},
            "content_bytes is not valid base64",
        ),
        ("/submit/bytes/", {**GOOD, "content_bytes": ""}, "content_bytes is empty"),
        (
            "/submit/bytes/",
            {**GOOD, "content_bytes": "aGk=", "additional_fields": "k:v"},
            "field 'additional_fields' must be a list",
        ),
        ("/submit/url/", {**GOOD, "content_url": "/relative/path.jpg"}, "not an absolute URL"),
        (
            "/submit/url/",
            {**GOOD, "content_url": "ftp://example.org/a.jpg"},
            "no content source can fetch ftp:// URLs",
        ),
        ("/submit/put-url/", {**GOOD, "file_type": "jpeg"}, "is not a MIME type"),
        ("/submit/url/", ["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    api: Api, path: str, body: Any, message: str
) -> None:
    response = api.post(path, body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_non_json_and_oversized_bodies(api: Api, runtime: Runtime) -> None:
    response = requests.post(
        api.base + "/submit/url/", data=b"content_id=1", headers=api.headers, timeout=10
    )
    assert response.status_code == 400 and "JSON object" in response.json()["message"]
    limit = runtime.settings.web.max_body_bytes
    huge = {**GOOD, "content_bytes": "A" * (limit + 10)}
    too_big = api.post("/submit/bytes/", huge)
    assert too_big.status_code == 413 and str(limit) in too_big.json()["message"]


def test_submit_needs_the_submit_scope(live_server: str, runtime: Runtime) -> None:
    reader = runtime.api_keys.create("reader", ["read"]).token
    body = {**GOOD, "signal_type": "pdq", "signal_value": "a" * 64}
    denied = requests.post(
        live_server + "/submit/hash/", json=body, headers=Tokens.header(reader), timeout=10
    )
    assert denied.status_code == 403
    assert requests.post(live_server + "/submit/hash/", json=body, timeout=10).status_code == 401


def test_matches_listing_is_newest_first_with_cursor_and_filters(
    api: Api, runtime: Runtime
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("one")
    banks.create_bank("two")
    values = [f"{i:064x}" for i in range(1, 6)]
    for value in values:
        banks.add_member(
            "one" if int(value, 16) % 2 else "two", NewMember(signals=(("pdq", value),))
        )
    for i, value in enumerate(values):
        api.post(
            "/submit/hash/",
            {
                "content_id": f"m-{i}",
                "content_type": "photo",
                "signal_type": "pdq",
                "signal_value": value,
            },
        )
    page = api.get("/matches", limit=2).json()
    assert [m["content_id"] for m in page["matches"]][:1] == ["m-4"]
    assert len(page["matches"]) == 2 and page["next_cursor"]
    rest = api.get("/matches", limit=100, cursor=page["next_cursor"]).json()
    seen = [m["id"] for m in page["matches"] + rest["matches"]]
    assert seen == sorted(seen, reverse=True) and rest["next_cursor"] is None
    assert {m["bank"] for m in api.get("/matches", bank="two").json()["matches"]} == {"two"}
    assert api.get("/matches", signal_type="video_md5").json()["matches"] == []
    assert api.get("/matches", since="2999-01-01T00:00:00").json()["matches"] == []
    assert api.get("/matches", limit="many").status_code == 400
    assert api.get("/content/nope").status_code == 404
    assert api.get("/content/nope/matches").status_code == 404


def test_photo_and_video_by_url_over_http(
    api: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    from tests.http_fixtures import loopback_server, serve_bytes

    photo = make_photo(seed=31)
    video = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 50
    Banks(runtime.store).create_bank("by-url")
    Banks(runtime.store).add_member(
        "by-url", NewMember(signals=(("video_md5", hashlib.md5(video).hexdigest()),))
    )
    with loopback_server() as server:
        photo_url = server.add("/p.jpg", serve_bytes(photo, content_type="image/jpeg"))
        video_url = server.add("/v.mp4", serve_bytes(video, content_type="video/mp4"))
        missing_url = server.add("/gone.jpg", serve_bytes(b"no", status=404))
        for content_id, content_type, url in [
            ("url-p", "photo", photo_url),
            ("url-v", "video", video_url),
            ("url-404", "photo", missing_url),
            ("url-private", "photo", "http://10.9.8.7/x.jpg"),
        ]:
            response = api.post(
                "/submit/url/",
                {"content_id": content_id, "content_type": content_type, "content_url": url},
            )
            assert response.status_code == 200, response.text
        run_jobs(worker_runtime)
    assert api.content("url-p")["status"] == "no_match"
    assert api.content("url-p")["signals"][0]["signal_type"] == "pdq"
    video_record = api.content("url-v")
    assert video_record["status"] == "actioned"
    assert video_record["signals"][0]["signal_value"] == hashlib.md5(video).hexdigest()
    failed = api.content("url-404")
    assert failed["status"] == "failed" and "404" in failed["error"]
    refused = api.content("url-private")
    assert refused["status"] == "failed" and "10.9.8.7" in refused["error"]
    media = runtime.settings.data_path / "media"
    assert not media.exists() or not list(media.iterdir()), "URL media is never kept"


def test_video_by_put_url(api: Api, worker_runtime: Runtime) -> None:
    video = b"\x1aE\xdf\xa3" + bytes(range(200)) * 30  # a WebM-ish header
    presigned = api.post(
        "/submit/put-url/",
        {"content_id": "pv-1", "content_type": "video", "file_type": "video/webm"},
    ).json()["presigned_url"]
    assert requests.put(presigned, data=video, timeout=10).status_code == 200
    run_jobs(worker_runtime)
    record = api.content("pv-1")
    assert record["status"] == "no_match"
    assert record["signals"] == [
        {
            "signal_type": "video_md5",
            "signal_value": hashlib.md5(video).hexdigest(),
            "quality": None,
            "status": "ok",
        }
    ]
