"""The ``[s3]`` settings section (``HMA_S3_*`` variables) of the S3 plugin.

Named ``s3`` rather than after the plugin so the variables are the short ``HMA_S3_*`` ones; the
TOML file may also call the table after the plugin, ``[s3_source]`` (``[[s3_source.buckets]]``),
but not both. Bucket subscriptions are a list of tables: ``[[s3.buckets]]`` in the TOML file,
or JSON in ``HMA_S3_BUCKETS``.
"""

from __future__ import annotations

import re
import string
from typing import Any

import attrs

from hma_framework.settings import FieldValueError, Settings, load_section
from hma_framework.types import SettingsSection

#: SNS signs with certificates served from its own hosts, over https only.
AWS_SNS_URL_PATTERN = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
CONTENT_TYPES = ("photo", "video")
TEMPLATE_FIELDS = frozenset({"bucket", "key"})


def _content_type(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value and value not in CONTENT_TYPES:
        raise FieldValueError(
            attribute.name, f"must be one of {', '.join(CONTENT_TYPES)} or empty, got {value!r}"
        )


def _template(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise FieldValueError(attribute.name, f"is not a valid template: {exc}") from exc
    unknown = names - TEMPLATE_FIELDS
    if unknown or not names:
        raise FieldValueError(
            attribute.name,
            f"may use only {{bucket}} and {{key}} (and must use one), got {value!r}",
        )


def _regex(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise FieldValueError(attribute.name, f"is not a regular expression: {exc}") from exc


@attrs.frozen
class BucketSubscription:
    """Objects created in ``bucket`` (under ``prefix``, ending in ``suffix``) are submitted."""

    bucket: str
    prefix: str = ""
    suffix: str = ""
    content_type: str = attrs.field(default="", validator=_content_type)
    content_id: str = attrs.field(default="{bucket}/{key}", validator=_template)
    additional_fields: tuple[str, ...] = ()

    def covers(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix) and key.endswith(self.suffix)


@attrs.frozen
class S3Settings:
    endpoint_url: str = attrs.field(
        default="",
        metadata={
            "help": "S3 endpoint (MinIO, Ceph, R2, a test server). Empty: AWS for the region. "
            "Credentials come from the standard AWS chain (env, profile, instance role)."
        },
    )
    region: str = attrs.field(default="us-east-1", metadata={"help": "AWS region."})
    path_style: bool = attrs.field(
        default=False,
        metadata={"help": "Path-style addressing (`endpoint/bucket/key`), as MinIO needs."},
    )
    buckets: tuple[BucketSubscription, ...] = attrs.field(
        default=(),
        metadata={
            "help": "Bucket subscriptions, `[[s3.buckets]]` (or `[[s3_source.buckets]]`) "
            "tables or a JSON list: "
            '`[{"bucket": "uploads", "prefix": "photos/", "suffix": ".jpg", '
            '"content_type": "photo", "content_id": "{bucket}/{key}", '
            '"additional_fields": []}]`. Content type by extension when omitted.'
        },
    )
    queue_urls: tuple[str, ...] = attrs.field(
        default=(),
        metadata={
            "help": "SQS queues receiving the buckets' ObjectCreated events (raw or via SNS); "
            "when set, `hma serve` runs `hma s3 listen`."
        },
    )
    sqs_endpoint_url: str = attrs.field(
        default="", metadata={"help": "SQS endpoint. Empty: AWS for the region."}
    )
    wait_seconds: int = attrs.field(
        default=20,
        metadata={"help": "SQS long-poll wait (0-20 s); the listener stops within it."},
    )
    events_token: str = attrs.field(
        default="",
        repr=False,
        metadata={
            "help": "Bearer token MinIO-style webhooks send to `POST /sources/s3/events`. "
            "Empty: only signed SNS messages are accepted there."
        },
    )
    sns_url_pattern: str = attrs.field(
        default=AWS_SNS_URL_PATTERN,
        validator=_regex,
        metadata={
            "help": "Regular expression an SNS message's SigningCertURL and SubscribeURL "
            "must match."
        },
    )
    sns_max_age_seconds: int = attrs.field(
        default=3600,
        metadata={
            "help": "Refuse an SNS message (on `POST /sources/s3/events`) whose Timestamp is "
            "more than this many seconds old or ahead, so a captured signed message cannot be "
            "replayed later. SNS's HTTP retries of one message must end within it."
        },
    )
    sns_endpoint_url: str = attrs.field(
        default="",
        metadata={
            "help": "Testing only: fetch SNS certificates and confirmations from this base URL "
            "instead of the SNS host named in the message. Off (empty) in production."
        },
    )

    media_bucket: str = attrs.field(
        default="",
        metadata={
            "help": "Keep submitted media in this bucket instead of the data folder: "
            "`/submit/bytes/` writes there and `/submit/put-url/` answers presigned S3 PUT "
            "URLs. Notify the listener (or the events endpoint) of the bucket's "
            "ObjectCreated events under the media prefix, so hashing starts on upload."
        },
    )
    media_prefix: str = attrs.field(
        default="hma-media/", metadata={"help": "Key prefix of media in the media bucket."}
    )

    @sns_max_age_seconds.validator
    def _check_age(self, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < 1:
            raise FieldValueError(attribute.name, f"must be at least 1, got {value}")

    @wait_seconds.validator
    def _check_wait(self, attribute: attrs.Attribute[Any], value: int) -> None:
        if not 0 <= value <= 20:
            raise FieldValueError(attribute.name, f"must be between 0 and 20, got {value}")


SECTION_NAME = "s3"
SECTION_ALIASES = ("s3_source",)
S3_SETTINGS = SettingsSection(SECTION_NAME, S3Settings, SECTION_ALIASES)


def s3_settings(settings: Settings) -> S3Settings:
    return load_section(settings, SECTION_NAME, S3Settings, SECTION_ALIASES)
