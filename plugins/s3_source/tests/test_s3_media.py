"""S3 as the media store: submitted bytes wait in the bucket, ``/submit/put-url/`` answers a
presigned S3 PUT URL that a plain HTTP client uploads to, the upload's bucket event starts
hashing, and reconcile finds uploads whose event never came.

Runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
import requests
from s3_fixtures import Aws, with_s3
from test_s3_listener import listener_thread, wait_until

from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, make_photo, run_jobs

TTL = 120


@pytest.fixture
def media_bucket(aws: Aws) -> str:
    return aws.new_bucket()


@pytest.fixture
def queue(aws: Aws, media_bucket: str) -> str:
    url, arn = aws.new_queue(visibility_timeout=2)
    aws.notify(media_bucket, queue_arn=arn)
    return url


@pytest.fixture
def settings(settings: Settings, moto_url: str, media_bucket: str, queue: str) -> Settings:
    settings = attrs.evolve(
        settings,
        pipeline=attrs.evolve(settings.pipeline, upload_url_ttl_seconds=TTL, stuck_after_seconds=1),
    )
    return with_s3(settings, moto_url, media_bucket=media_bucket, queue_urls=queue)


def media_keys(aws: Aws, bucket: str) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=bucket, Prefix="hma-media/")
    return [item["Key"] for item in listed.get("Contents", [])]


def submit_bytes(client: Any, tokens: Tokens, content_id: str, media: bytes) -> None:
    answer = client.post(
        "/submit/bytes/",
        json={
            "content_id": content_id,
            "content_type": "photo",
            "content_bytes": base64.b64encode(media).decode(),
        },
        headers=tokens.header(tokens.submit),
    )
    assert answer.status_code == 200, answer.json


def test_submitted_bytes_wait_in_the_bucket_and_are_deleted_after_hashing(
    client: Any,
    runtime: Runtime,
    worker_runtime: Runtime,
    tokens: Tokens,
    aws: Aws,
    media_bucket: str,
) -> None:
    submit_bytes(client, tokens, "b-1", make_photo(seed=2))
    [key] = media_keys(aws, media_bucket)
    row = runtime.content.get_row(1)
    assert row is not None and key == f"hma-media/{row.media_key}"
    run_jobs(worker_runtime)
    row = runtime.content.get_row(1)
    assert row is not None and row.status == "no_match", row.error
    assert media_keys(aws, media_bucket) == []


def test_retained_media_stays_in_the_bucket(
    client: Any, settings: Settings, registry: Any, tokens: Tokens, aws: Aws, media_bucket: str
) -> None:
    from hma_framework.runtime import build_runtime

    retaining = attrs.evolve(settings, pipeline=attrs.evolve(settings.pipeline, retain_media=True))
    worker = build_runtime(retaining, registry=registry)
    try:
        submit_bytes(client, tokens, "kept", make_photo(seed=3))
        run_jobs(worker)
    finally:
        worker.close()
    assert len(media_keys(aws, media_bucket)) == 1


def put_url(client: Any, tokens: Tokens, content_id: str, content_type: str, file_type: str) -> str:
    answer = client.post(
        "/submit/put-url/",
        json={"content_id": content_id, "content_type": content_type, "file_type": file_type},
        headers=tokens.header(tokens.submit),
    )
    assert answer.status_code == 200, answer.json
    url: str = answer.json["presigned_url"]
    return url


def test_presigned_uploads_of_a_photo_and_a_video_are_hashed_and_matched(
    client: Any,
    runtime: Runtime,
    worker_runtime: Runtime,
    tokens: Tokens,
    aws: Aws,
    moto_url: str,
    queue: str,
) -> None:
    photo = make_photo(seed=31)
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    photo_path = runtime.settings.data_path / "photo.jpg"
    photo_path.write_bytes(photo)
    banks = Banks(runtime.store)
    banks.create_bank("known")
    pdq = runtime.hashers["pdq"].hash_file(photo_path).value
    banks.add_member("known", NewMember(signals=(("pdq", pdq),)))
    md5 = hashlib.md5(video, usedforsecurity=False).hexdigest()
    banks.add_member("known", NewMember(signals=(("video_md5", md5),)))

    photo_url = put_url(client, tokens, "up-photo", "photo", "image/jpeg")
    video_url = put_url(client, tokens, "up-video", "video", "video/mp4")
    assert photo_url.startswith(moto_url)  # a real S3 presigned URL, not the API's own
    assert parse_qs(urlsplit(photo_url).query)["X-Amz-Expires"] == [str(TTL)]
    with listener_thread(runtime):
        for url, body, media_type in [
            (photo_url, photo, "image/jpeg"),
            (video_url, video, "video/mp4"),
        ]:
            put = requests.put(url, data=body, headers={"Content-Type": media_type}, timeout=10)
            assert put.status_code == 200, put.text
        wait_until(
            lambda: all(
                (row := runtime.content.get_row(pk)) is not None and row.status == "submitted"
                for pk in (1, 2)
            )
        )
    run_jobs(worker_runtime)
    for pk in (1, 2):
        row = runtime.content.get_row(pk)
        assert row is not None and row.status == "actioned", (row.content_id, row.error)
    second = client.post(
        "/submit/put-url/",
        json={"content_id": "up-photo", "content_type": "photo", "file_type": "image/jpeg"},
        headers=tokens.header(tokens.submit),
    )
    assert second.status_code == 409  # already uploaded


def test_reconcile_hashes_an_upload_whose_event_never_came(
    client: Any,
    runtime: Runtime,
    worker_runtime: Runtime,
    tokens: Tokens,
    aws: Aws,
    media_bucket: str,
) -> None:
    aws.s3.put_bucket_notification_configuration(
        Bucket=media_bucket, NotificationConfiguration={}
    )  # events are lost
    url = put_url(client, tokens, "quiet", "photo", "image/jpeg")
    waiting = put_url(client, tokens, "never-uploaded", "photo", "image/jpeg")
    assert waiting != url
    put = requests.put(
        url, data=make_photo(seed=9), headers={"Content-Type": "image/jpeg"}, timeout=10
    )
    assert put.status_code == 200
    time.sleep(1.1)  # past stuck_after_seconds
    assert reconcile_runtime(runtime)["claimed_uploads"] == 1
    run_jobs(worker_runtime)
    quiet = runtime.content.get_row(1)
    assert quiet is not None and quiet.status == "no_match", quiet.error
    never = runtime.content.get_row(2)
    assert never is not None and never.status == "awaiting_upload"


def test_an_upload_over_the_body_limit_fails_the_content(
    client: Any,
    runtime: Runtime,
    settings: Settings,
    registry: Any,
    tokens: Tokens,
    aws: Aws,
    media_bucket: str,
) -> None:
    from hma_framework.runtime import build_runtime

    url = put_url(client, tokens, "too-big", "photo", "image/jpeg")
    big = make_photo(seed=4)
    put = requests.put(url, data=big, headers={"Content-Type": "image/jpeg"}, timeout=10)
    assert put.status_code == 200  # a presigned PUT cannot refuse it
    time.sleep(1.1)
    assert reconcile_runtime(runtime)["claimed_uploads"] == 1
    strict = attrs.evolve(settings, web=attrs.evolve(settings.web, max_body_bytes=len(big) - 1))
    worker = build_runtime(strict, registry=registry)
    try:
        run_jobs(worker)
    finally:
        worker.close()
    row = runtime.content.get_row(1)
    assert (
        row is not None and row.status == "failed" and "HMA_WEB_MAX_BODY_BYTES" in (row.error or "")
    )
    assert media_keys(aws, media_bucket) == []  # a failed upload is not kept either
