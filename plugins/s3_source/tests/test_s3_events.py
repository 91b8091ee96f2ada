"""S3 event documents and bucket subscriptions: pure logic, no services."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hma_s3_source.events import EventFormatError, ObjectCreated, parse_document
from hma_s3_source.intake import submission_for
from hma_s3_source.s3_settings import S3Settings, s3_settings

from hma_framework.settings import SettingsError, load_settings


def s3_event(key: str, *, bucket: str = "uploads", size: int = 10, name: str = "") -> str:
    record = {
        "eventName": name or "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "eTag": '"abc"', "versionId": "v1"},
        },
    }
    return json.dumps({"Records": [record]})


def settings_with(buckets: list[dict[str, Any]]) -> S3Settings:
    return s3_settings(load_settings({"HMA_S3_BUCKETS": json.dumps(buckets)}))


def test_keys_are_form_decoded() -> None:
    [event] = parse_document(s3_event("photos/my+photo%2B1+%C3%A9%2Fx.jpg"))
    assert event == ObjectCreated("uploads", "photos/my photo+1 é/x.jpg", 10, "abc", "v1")


def test_sns_envelopes_are_unwrapped_and_test_events_skipped() -> None:
    envelope = {"Type": "Notification", "Message": s3_event("a.jpg"), "TopicArn": "t"}
    [event] = parse_document(json.dumps(envelope))
    assert event.key == "a.jpg"
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}
    assert parse_document(json.dumps(test_event)) == []
    wrapped_test = {"Type": "Notification", "Message": json.dumps(test_event)}
    assert parse_document(json.dumps(wrapped_test)) == []


def test_only_object_created_records_count() -> None:
    assert parse_document(s3_event("a.jpg", name="ObjectRemoved:Delete")) == []
    [minio] = parse_document(s3_event("a.jpg", name="s3:ObjectCreated:Put"))  # MinIO's names
    assert minio.key == "a.jpg"


@pytest.mark.parametrize("body", ["not json", "[]", '{"Records": 3}', '{"Records": [{"eventName"'])
def test_documents_that_are_not_s3_events_are_refused(body: str) -> None:
    with pytest.raises(EventFormatError):
        parse_document(body)


def test_a_created_record_without_its_object_is_refused() -> None:
    with pytest.raises(EventFormatError, match="lacks"):
        parse_document(json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}))


def test_subscriptions_filter_by_bucket_prefix_and_suffix() -> None:
    s3 = settings_with([{"bucket": "uploads", "prefix": "photos/", "suffix": ".jpg"}])
    event = ObjectCreated("uploads", "photos/a b.jpg", 10, "abc")
    submission = submission_for(s3, event)
    assert submission is not None
    assert submission.content_id == "uploads/photos/a b.jpg"
    assert submission.content_type == "photo"
    assert submission.content_url == "s3://uploads/photos/a b.jpg"
    assert submission.additional_fields == ("s3_bucket:uploads", "s3_key:photos/a b.jpg")
    for bucket, key in [
        ("other", "photos/a.jpg"),
        ("uploads", "videos/a.jpg"),
        ("uploads", "photos/a.png"),
    ]:
        assert submission_for(s3, ObjectCreated(bucket, key, 10, "abc")) is None


def test_content_type_template_and_fields_come_from_the_subscription() -> None:
    s3 = settings_with(
        [
            {
                "bucket": "media",
                "content_type": "video",
                "content_id": "clip:{key}",
                "additional_fields": ["tier:paid"],
            },
            {"bucket": "uploads"},
        ]
    )
    clip = submission_for(s3, ObjectCreated("media", "x.bin", 10, "e"))
    assert clip is not None and clip.content_type == "video" and clip.content_id == "clip:x.bin"
    assert clip.additional_fields[-1] == "tier:paid"
    movie = submission_for(s3, ObjectCreated("uploads", "m.MP4", 10, "e"))
    assert movie is not None and movie.content_type == "video"
    assert submission_for(s3, ObjectCreated("uploads", "notes.txt", 10, "e")) is None


def test_zero_size_objects_are_not_content() -> None:
    s3 = settings_with([{"bucket": "uploads"}])
    assert submission_for(s3, ObjectCreated("uploads", "a.jpg", 0, "e")) is None


def test_a_new_etag_is_a_different_submission_the_same_one_is_not() -> None:
    s3 = settings_with([{"bucket": "uploads"}])
    first = submission_for(s3, ObjectCreated("uploads", "a.jpg", 5, "e1"))
    again = submission_for(s3, ObjectCreated("uploads", "a.jpg", 5, "e1"))
    newer = submission_for(s3, ObjectCreated("uploads", "a.jpg", 5, "e2"))
    assert first is not None and again is not None and newer is not None
    assert first.digest == again.digest != newer.digest


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"HMA_S3_BUCKETS": "[{"}, "JSON"),
        ({"HMA_S3_BUCKETS": '[{"bucket": "b", "content_id": "{user}"}]'}, "content_id"),
        ({"HMA_S3_BUCKETS": '[{"bucket": "b", "content_type": "audio"}]'}, "content_type"),
        ({"HMA_S3_WAIT_SECONDS": "30"}, "HMA_S3_WAIT_SECONDS"),
    ],
)
def test_bad_s3_settings_name_the_key(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        s3_settings(load_settings(environ))


def test_bucket_subscriptions_read_from_toml_tables(tmp_path: Any) -> None:
    config = tmp_path / "hma.toml"
    config.write_text(
        '[[s3.buckets]]\nbucket = "uploads"\nprefix = "p/"\n\n[[s3.buckets]]\nbucket = "b2"\n'
    )
    s3 = s3_settings(load_settings({}, config_file=str(config)))
    assert [(b.bucket, b.prefix) for b in s3.buckets] == [("uploads", "p/"), ("b2", "")]
