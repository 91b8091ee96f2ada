"""Fetching s3:// locations from a real S3 endpoint (moto's server), directly and via the API."""

from __future__ import annotations

import io

import attrs
import pytest
from hma_s3_source.objects import S3ContentSource, parse_location
from hma_s3_source.s3_settings import s3_settings
from s3_fixtures import Aws, with_s3

from hma_framework.errors import PermanentFetchError, TransientFetchError
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, make_photo, run_jobs


@pytest.fixture
def settings(settings: Settings, moto_url: str) -> Settings:
    return with_s3(settings, moto_url)


def source(settings: Settings, **limits: int) -> S3ContentSource:
    return S3ContentSource(s3_settings(settings), attrs.evolve(settings.fetch, **limits))


def test_an_object_is_streamed_with_its_media_type(settings: Settings, aws: Aws) -> None:
    bucket = aws.new_bucket()
    photo = make_photo(seed=1)
    key = "photos/a b+c é.jpg"
    aws.s3.put_object(Bucket=bucket, Key=key, Body=photo, ContentType="image/jpeg")
    target = io.BytesIO()
    fetched = source(settings).fetch(f"s3://{bucket}/{key}", target)
    assert target.getvalue() == photo
    assert fetched.size == len(photo) and fetched.media_type == "image/jpeg"


def test_missing_objects_and_buckets_are_permanent_failures(settings: Settings, aws: Aws) -> None:
    bucket = aws.new_bucket()
    with pytest.raises(PermanentFetchError, match="NoSuchKey"):
        source(settings).fetch(f"s3://{bucket}/nope.jpg", io.BytesIO())
    with pytest.raises(PermanentFetchError, match="NoSuchBucket"):
        source(settings).fetch("s3://no-such-bucket-here/a.jpg", io.BytesIO())


def test_objects_over_the_size_cap_are_refused(settings: Settings, aws: Aws) -> None:
    bucket = aws.new_bucket()
    aws.s3.put_object(Bucket=bucket, Key="big.jpg", Body=b"x" * 5000)
    target = io.BytesIO()
    with pytest.raises(PermanentFetchError, match="HMA_FETCH_MAX_BYTES"):
        source(settings, max_bytes=4096).fetch(f"s3://{bucket}/big.jpg", target)
    assert target.getvalue() == b""


def test_an_unreachable_endpoint_is_a_transient_failure(settings: Settings) -> None:
    from tests.http_fixtures import closed_port

    closed = with_s3(settings, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientFetchError, match="could not be reached"):
        source(closed).fetch("s3://bucket/a.jpg", io.BytesIO())


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (503, "SlowDown", TransientFetchError),
        (500, "InternalError", TransientFetchError),
        (403, "AccessDenied", PermanentFetchError),
    ],
)
def test_s3_answers_are_sorted_into_transient_and_permanent_failures(
    settings: Settings, status: int, code: str, error: type[Exception]
) -> None:
    from tests.http_fixtures import loopback_server, serve_bytes

    body = f"<Error><Code>{code}</Code><Message>no</Message></Error>".encode()
    with loopback_server() as server:
        server.add("/bucket/a.jpg", serve_bytes(body, status=status, content_type="text/xml"))
        answering = with_s3(settings, server.url("").rstrip("/"))
        with pytest.raises(error, match=code):
            source(answering).fetch("s3://bucket/a.jpg", io.BytesIO())


@pytest.mark.parametrize("location", ["s3://", "s3://bucket", "s3://bucket/", "s3:/bucket/a"])
def test_malformed_locations_are_refused(location: str) -> None:
    with pytest.raises(PermanentFetchError):
        parse_location(location)


def test_submit_url_and_lookup_accept_s3_locations(
    client: object, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, aws: Aws
) -> None:
    bucket = aws.new_bucket()
    aws.s3.put_object(Bucket=bucket, Key="p/one.jpg", Body=make_photo(seed=3))
    auth = tokens.header(tokens.submit)
    answer = client.post(  # type: ignore[attr-defined]
        "/submit/url/",
        json={
            "content_id": "one",
            "content_type": "photo",
            "content_url": f"s3://{bucket}/p/one.jpg",
        },
        headers=auth,
    )
    assert answer.status_code == 200, answer.json
    missing = client.post(  # type: ignore[attr-defined]
        "/submit/url/",
        json={"content_id": "two", "content_type": "photo", "content_url": f"s3://{bucket}/x"},
        headers=auth,
    )
    assert missing.status_code == 200
    run_jobs(worker_runtime)
    one = runtime.content.get_row(1)
    two = runtime.content.get_row(2)
    assert one is not None and one.status == "no_match", one.error if one else None
    assert two is not None and two.status == "failed" and "NoSuchKey" in (two.error or "")
    lookup = client.post(  # type: ignore[attr-defined]
        "/lookup",
        json={"content_type": "photo", "content_url": f"s3://{bucket}/p/one.jpg"},
        headers=tokens.header(tokens.read),
    )
    assert lookup.status_code == 200, lookup.json


def test_bank_members_accept_s3_locations(
    client: object, runtime: Runtime, tokens: Tokens, aws: Aws
) -> None:
    bucket = aws.new_bucket()
    aws.s3.put_object(Bucket=bucket, Key="known/bad.jpg", Body=make_photo(seed=6))
    admin = tokens.header(tokens.admin)
    created = client.post("/banks", json={"name": "from_s3"}, headers=admin)  # type: ignore[attr-defined]
    assert created.status_code == 201, created.json
    added = client.post(  # type: ignore[attr-defined]
        "/banks/from_s3/members",
        json={"content_type": "photo", "content_url": f"s3://{bucket}/known/bad.jpg"},
        headers=admin,
    )
    assert added.status_code == 201, added.json
    missing = client.post(  # type: ignore[attr-defined]
        "/banks/from_s3/members",
        json={"content_type": "photo", "content_url": f"s3://{bucket}/known/missing.jpg"},
        headers=admin,
    )
    assert missing.status_code == 400 and "NoSuchKey" in missing.json["message"]
