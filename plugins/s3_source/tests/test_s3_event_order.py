"""Out-of-order S3 events: S3's per-key ``sequencer`` decides which write is newest, so a late
event for an older version never re-processes the object, on the real store and Redis.

Runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from hma_s3_source.events import ObjectCreated, parse_document, sequencer_order
from hma_s3_source.intake import IntakeTally, record_events, submission_for
from hma_s3_source.s3_settings import S3Settings, s3_settings
from sqlalchemy import func, select

from hma_framework.runtime import Runtime
from hma_framework.settings import load_settings
from hma_framework.store.tables import ContentRow, ContentSubmissionRow

S3 = s3_settings(load_settings({"HMA_S3_BUCKETS": json.dumps([{"bucket": "uploads"}])}))


def put(etag: str, sequencer: str) -> ObjectCreated:
    return ObjectCreated("uploads", "photos/a.jpg", 10, etag, sequencer=sequencer)


def deliver(runtime: Runtime, event: ObjectCreated, s3: S3Settings = S3) -> IntakeTally:
    return record_events(runtime, s3, [event])


def counts(runtime: Runtime) -> tuple[int, int]:
    """(contents, submissions): each submission past the first is one re-processing."""
    with runtime.store.reading() as session:
        contents = session.scalar(select(func.count()).select_from(ContentRow))
        submitted = session.scalar(select(func.count()).select_from(ContentSubmissionRow))
    return int(contents or 0), int(submitted or 0)


def current_etag_digest(runtime: Runtime) -> str:
    row = runtime.content.get_row(1)
    assert row is not None
    return row.params_digest


def digest_of(event: ObjectCreated) -> str:
    submission = submission_for(S3, event)
    assert submission is not None
    return submission.digest


@pytest.mark.parametrize(
    ("first", "second", "order"),
    [
        ("0055B1C4C5D2A0F9E1", "0055B1C4C5D2A0F9E2", -1),
        ("0055b1c4c5d2a0f9e2", "0055B1C4C5D2A0F9E2", 0),
        ("0A", "09FF", 1),  # right-padded: 0A00 > 09FF
        ("09FF", "0A", -1),
        ("0A", "0A00", 0),
    ],
)
def test_sequencers_compare_as_right_padded_hex(first: str, second: str, order: int) -> None:
    assert sequencer_order(first, second) == order


def test_the_sequencer_is_read_from_the_event() -> None:
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "uploads"},
            "object": {"key": "a.jpg", "size": 3, "eTag": "e", "sequencer": "0055abc"},
        },
    }
    [event] = parse_document(json.dumps({"Records": [record]}))
    assert event.sequencer == "0055ABC"
    record["s3"]["object"]["sequencer"] = "not hex"  # type: ignore[index]
    [odd] = parse_document(json.dumps({"Records": [record]}))
    assert odd.sequencer == ""


def test_a_late_event_for_an_older_version_does_not_reprocess(runtime: Runtime) -> None:
    old, new = put("e1", "0055B1C4C5D2A0F900"), put("e2", "0055B1C4C5D2A0F9A0")
    assert deliver(runtime, old).recorded == 1
    assert deliver(runtime, new).recorded == 1  # genuinely newer: processed again
    assert counts(runtime) == (1, 2)
    late = deliver(runtime, old)  # the older write's event, redelivered or delayed
    assert (late.recorded, late.unchanged) == (0, 1)
    assert counts(runtime) == (1, 2)
    assert current_etag_digest(runtime) == digest_of(new)


def test_the_same_object_reported_twice_stays_one_content(runtime: Runtime) -> None:
    first = put("e1", "0055B1C4C5D2A0F900")
    assert deliver(runtime, first).recorded == 1
    assert deliver(runtime, first).unchanged == 1
    # The same bytes written again (same ETag, later sequencer): still one content...
    assert deliver(runtime, put("e1", "0055B1C4C5D2A0F9F0")).unchanged == 1
    assert counts(runtime) == (1, 1)
    # ...and a write that happened before that re-put must not win over it.
    assert deliver(runtime, put("e2", "0055B1C4C5D2A0F9A0")).unchanged == 1
    assert counts(runtime) == (1, 1)
    assert current_etag_digest(runtime) == digest_of(first)
    newer = put("e3", "0055B1C4C5D2A0FA00")
    assert deliver(runtime, newer).recorded == 1
    assert counts(runtime) == (1, 2)
    assert current_etag_digest(runtime) == digest_of(newer)


def test_without_an_order_the_etag_still_decides(runtime: Runtime) -> None:
    """Senders without sequencers, or with equal ones (some S3 servers send a constant):
    a different ETag is a newer version, as before."""
    assert deliver(runtime, put("e1", "")).recorded == 1
    assert deliver(runtime, put("e2", "")).recorded == 1
    assert deliver(runtime, put("e3", "617F08299329D189")).recorded == 1
    assert deliver(runtime, put("e4", "617F08299329D189")).recorded == 1
    assert deliver(runtime, put("e4", "617F08299329D189")).unchanged == 1
    assert counts(runtime) == (1, 4)
