"""S3 event documents and bucket subscriptions: pure logic, no services."""

from __future__ import annotations

import datetime as dt
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
        ({"HMA_S3_SNS_MAX_AGE_SECONDS": "0"}, "HMA_S3_SNS_MAX_AGE_SECONDS"),
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


def test_the_table_may_be_named_after_the_plugin(tmp_path: Any) -> None:
    """The issue's `[[s3_source.buckets]]` form configures the same section as `[s3]`, and the
    variables stay `HMA_S3_*` (they still override the file)."""
    config = tmp_path / "hma.toml"
    config.write_text(
        '[s3_source]\nregion = "eu-west-1"\n\n'
        '[[s3_source.buckets]]\nbucket = "uploads"\nsuffix = ".jpg"\n'
    )
    s3 = s3_settings(load_settings({"HMA_S3_REGION": "eu-west-2"}, config_file=str(config)))
    assert [(b.bucket, b.suffix) for b in s3.buckets] == [("uploads", ".jpg")]
    assert s3.region == "eu-west-2"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[s3_source.buckets]]\nbucket = "b"\ncontent_type = "audio"\n')
    with pytest.raises(SettingsError, match="content_type"):
        s3_settings(load_settings({}, config_file=str(bad)))


def test_both_table_names_at_once_are_refused(tmp_path: Any) -> None:
    config = tmp_path / "hma.toml"
    config.write_text('[s3]\nregion = "eu-west-1"\n\n[[s3_source.buckets]]\nbucket = "u"\n')
    with pytest.raises(SettingsError, match=r"\[s3\] and \[s3_source\].*only one"):
        s3_settings(load_settings({}, config_file=str(config)))


def test_hma_settings_shows_and_checks_the_plugin_named_table(tmp_path: Any) -> None:
    """`hma settings` (and startup) read `[s3_source]` too, and refuse both names at once."""
    from click.testing import CliRunner

    from hma_framework.cli import cli

    config = tmp_path / "hma.toml"
    config.write_text('[s3_source]\nregion = "ap-south-1"\n')
    shown = CliRunner().invoke(cli, ["settings"], env={"HMA_CONFIG": str(config)})
    assert shown.exit_code == 0, shown.output
    assert "HMA_S3_REGION=ap-south-1" in shown.output
    config.write_text('[s3_source]\nregion = "ap-south-1"\n[s3]\nregion = "us-east-2"\n')
    both = CliRunner().invoke(cli, ["settings"], env={"HMA_CONFIG": str(config)})
    assert both.exit_code != 0 and "only one" in both.output


def test_the_sns_age_bound_is_a_setting() -> None:
    """Checked before any certificate is fetched: the URL below is never visited."""
    from hma_s3_source.sns import SnsRejected, SnsVerifier

    s3 = s3_settings(load_settings({"HMA_S3_SNS_MAX_AGE_SECONDS": "60"}))
    assert s3.sns_max_age_seconds == 60
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    message = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": "{}",
        "Timestamp": sent.isoformat(),
        "SignatureVersion": "2",
        "Signature": "c2ln",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/never-fetched.pem",
    }
    with pytest.raises(SnsRejected, match="replay"):
        SnsVerifier(s3).verify(message)
    with pytest.raises(SnsRejected, match="ISO 8601"):
        SnsVerifier(s3).verify(dict(message, Timestamp="yesterday"))
