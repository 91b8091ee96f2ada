"""S3 objects: ``s3://bucket/key`` locations, boto3 clients, and fetching within limits.

A location's key is everything after the bucket, taken literally (as the AWS CLI does):
``s3://uploads/my photo+1.jpg`` is the key ``my photo+1.jpg``. Fetches obey the same size cap
and deadline as URL fetches (``fetch.*`` settings), and S3's answers are sorted into failures
worth retrying (throttling, 5xx, a dropped connection) and ones that are not (a missing or
denied object).
"""

from __future__ import annotations

import time
from typing import Any, BinaryIO

import attrs

from hma_framework.errors import PermanentFetchError, TransientFetchError
from hma_framework.settings import FetchSettings, Settings
from hma_framework.types import FetchedMedia
from hma_s3_source.s3_settings import S3Settings, s3_settings

SCHEME = "s3"
CHUNK_BYTES = 256 * 1024
CONNECT_TIMEOUT_SECONDS = 10
#: Error codes that say "later" rather than "never".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "InternalError",
        "503",
        "500",
    }
)


@attrs.frozen
class ObjectLocation:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"{SCHEME}://{self.bucket}/{self.key}"


def parse_location(location: str) -> ObjectLocation:
    """``s3://bucket/key`` split, or ``PermanentFetchError`` saying what is wrong."""
    scheme, sep, rest = location.partition("://")
    if scheme.lower() != SCHEME or not sep:
        raise PermanentFetchError(f"{location!r} is not an s3://bucket/key location")
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise PermanentFetchError(f"{location!r} names no bucket or no key (s3://bucket/key)")
    return ObjectLocation(bucket, key)


def client(s3: S3Settings, service: str = "s3", *, read_timeout: float = 60) -> Any:
    """A boto3 client for ``service`` configured by the ``[s3]`` settings."""
    import boto3
    from botocore.config import Config

    endpoint = s3.sqs_endpoint_url if service == "sqs" else s3.endpoint_url
    config = Config(
        region_name=s3.region,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path" if s3.path_style else "auto"},
        signature_version="s3v4" if service == "s3" else None,
    )
    session = boto3.session.Session()
    return session.client(service, endpoint_url=endpoint or None, config=config)


def classify_client_error(exc: Exception, where: str) -> Exception:
    """The fetch error a botocore exception amounts to."""
    from botocore import exceptions as boto_errors

    if isinstance(exc, boto_errors.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{where}: S3 answered {code or status} ({error.get('Message', '')})"
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientFetchError(message)
        return PermanentFetchError(message)
    if isinstance(exc, boto_errors.NoCredentialsError | boto_errors.PartialCredentialsError):
        return PermanentFetchError(f"{where}: no AWS credentials are configured ({exc})")
    if isinstance(exc, boto_errors.BotoCoreError | OSError):
        return TransientFetchError(f"{where}: S3 could not be reached ({exc})")
    return exc


class S3ContentSource:
    """Streams S3 objects into a file, within the ``fetch.*`` limits."""

    def __init__(self, s3: S3Settings, limits: FetchSettings) -> None:
        self._limits = limits
        self._client = client(s3, read_timeout=min(30, limits.timeout_seconds))

    def fetch(self, location: str, destination: BinaryIO) -> FetchedMedia:
        target = parse_location(location)
        deadline = time.monotonic() + self._limits.timeout_seconds
        limit = self._limits.max_bytes
        try:
            answer = self._client.get_object(Bucket=target.bucket, Key=target.key)
            declared = int(answer.get("ContentLength") or 0)
            if declared > limit:
                raise _too_large(target, limit, f"; it is {declared} bytes")
            body = answer["Body"]
            size = 0
            try:
                while chunk := body.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(target, limit)
                    destination.write(chunk)
                    if time.monotonic() > deadline:
                        raise TransientFetchError(
                            f"fetching {target.url} did not finish within "
                            f"{self._limits.timeout_seconds}s (limit: HMA_FETCH_TIMEOUT_SECONDS)"
                        )
            finally:
                body.close()
        except (PermanentFetchError, TransientFetchError):
            raise
        except Exception as exc:
            raise classify_client_error(exc, target.url) from exc
        media_type = str(answer.get("ContentType") or "").split(";", 1)[0].strip().lower()
        return FetchedMedia(size=size, media_type=media_type or None)


def _too_large(target: ObjectLocation, limit: int, detail: str = "") -> PermanentFetchError:
    return PermanentFetchError(
        f"{target.url} is larger than {limit} bytes{detail} (limit: HMA_FETCH_MAX_BYTES)"
    )


def make_s3_source(settings: Settings) -> S3ContentSource:
    """The factory the plugin registers (the runtime keeps one per process)."""
    return S3ContentSource(s3_settings(settings), settings.fetch)
