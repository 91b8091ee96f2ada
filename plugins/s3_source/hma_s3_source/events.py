"""S3 event notifications read into plain records, whichever way they arrived.

The same document comes raw (S3 -> SQS, MinIO webhooks), wrapped in an SNS envelope (S3 -> SNS
-> SQS, SNS HTTP subscriptions), or as the ``s3:TestEvent`` S3 sends when notifications are
configured. Keys arrive form-encoded (``+`` for spaces, ``%2F``...) and are decoded here.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import unquote_plus

import attrs

TEST_EVENT = "s3:TestEvent"


class EventFormatError(ValueError):
    """The document is not an S3 event notification in any form this plugin knows."""


@attrs.frozen
class ObjectCreated:
    """One object-created record: where the object is and which version of it."""

    bucket: str
    key: str
    size: int | None
    etag: str
    version_id: str = ""
    #: S3's per-key event order (hex, upper case); empty when the sender gave none.
    sequencer: str = ""


def sequencer_order(first: str, second: str) -> int:
    """-1, 0 or 1 as event ``first`` happened before, with or after ``second`` (same key).

    The S3 docs: sequencers may differ in length; right-pad the shorter with zeros, then
    compare the hex strings lexicographically. (Older revisions of the page said left-pad;
    S3 itself emits equal lengths per key, where both readings agree.)
    """
    width = max(len(first), len(second))
    a, b = first.upper().ljust(width, "0"), second.upper().ljust(width, "0")
    return (a > b) - (a < b)


def _sequencer(value: Any) -> str:
    text = str(value or "").strip()
    return text.upper() if text and all(c in string.hexdigits for c in text) else ""


def parse_document(text: str | bytes) -> list[ObjectCreated]:
    """The object-created records in a message body; other event kinds are left out."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventFormatError(f"not JSON: {exc}") from exc
    return records_in(document)


def records_in(document: Any) -> list[ObjectCreated]:
    if not isinstance(document, dict):
        raise EventFormatError("an S3 event is a JSON object")
    if document.get("Event") == TEST_EVENT:
        return []
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return parse_document(document["Message"])  # an SNS envelope
    records = document.get("Records")
    if not isinstance(records, list):
        raise EventFormatError("no Records list: not an S3 event notification")
    return [event for record in records if (event := _object_created(record)) is not None]


def _object_created(record: Any) -> ObjectCreated | None:
    if not isinstance(record, dict):
        raise EventFormatError("a record is not a JSON object")
    name = str(record.get("eventName", ""))
    if not name.removeprefix("s3:").startswith("ObjectCreated:"):
        return None  # deletions, restores, tagging... are not content
    try:
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        key = unquote_plus(obj["key"])
    except (KeyError, TypeError) as exc:
        raise EventFormatError(f"an ObjectCreated record lacks {exc}") from exc
    if not isinstance(bucket, str) or not bucket or not key:
        raise EventFormatError("an ObjectCreated record has an empty bucket or key")
    size = obj.get("size")
    return ObjectCreated(
        bucket=bucket,
        key=key,
        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
        version_id=str(obj.get("versionId") or ""),
        sequencer=_sequencer(obj.get("sequencer")),
    )
