"""S3 as the media store (``HMA_S3_MEDIA_BUCKET``): submitted media waits in a bucket.

``/submit/bytes/`` writes objects under ``media_prefix``; ``/submit/put-url/`` answers a
presigned S3 PUT URL for a key that starts with the content's id number, so the upload's
ObjectCreated event (through the listener or the events endpoint) leads back to the content
and starts hashing. The hash job downloads the object to a temporary file; the object is
deleted after hashing unless retention is on (the pipeline decides, through ``delete``).
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hma_framework.errors import PermanentMediaError
from hma_framework.media import MediaStoreUnavailable, MediaTooLargeError
from hma_framework.settings import Settings
from hma_s3_source.objects import CHUNK_BYTES, classify_client_error, client
from hma_s3_source.s3_settings import S3Settings, s3_settings

#: Media up to this size is buffered in memory on its way to the bucket; larger spills to disk.
SPOOL_BYTES = 8 * 1024 * 1024


class S3MediaStore:
    """Media objects under ``<media_bucket>/<media_prefix><key>``."""

    def __init__(self, s3: S3Settings, tmp_dir: Path, max_bytes: int) -> None:
        """``max_bytes``: the largest media read back for hashing (a presigned PUT cannot
        limit what a client sends, so the limit is applied here)."""
        self._client = client(s3)
        self._bucket = s3.media_bucket
        self._prefix = s3.media_prefix
        self._tmp_dir = tmp_dir
        self._max_bytes = max_bytes

    def new_key(self) -> str:
        return secrets.token_hex(16)

    def object_key(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid media key {key!r}")
        return self._prefix + key

    def write(self, key: str, source: IO[bytes], max_bytes: int) -> int:
        written = 0
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES, dir=str(self._tmp_path())) as buffer:
            while chunk := source.read(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise MediaTooLargeError(f"media is larger than {max_bytes} bytes")
                buffer.write(chunk)
            buffer.seek(0)
            self._store("upload_fileobj", buffer, self._bucket, self.object_key(key))
        return written

    def write_bytes(self, key: str, data: bytes) -> int:
        self._store("put_object", Bucket=self._bucket, Key=self.object_key(key), Body=data)
        return len(data)

    def _store(self, operation: str, *args: Any, **kwargs: Any) -> None:
        try:
            self._call(operation, *args, **kwargs)
        except Exception as exc:
            raise MediaStoreUnavailable(f"the media bucket refused the media: {exc}") from exc

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        handle, name = tempfile.mkstemp(dir=self._tmp_path(), prefix="media-")
        path = Path(name)
        try:
            with open(handle, "wb") as target:
                answer = self._call("get_object", Bucket=self._bucket, Key=self.object_key(key))
                body = answer["Body"]
                size = 0
                try:
                    while chunk := body.read(CHUNK_BYTES):
                        size += len(chunk)
                        if size > self._max_bytes:
                            raise PermanentMediaError(
                                f"the uploaded media is larger than {self._max_bytes} bytes "
                                "(limit: HMA_WEB_MAX_BODY_BYTES)"
                            )
                        target.write(chunk)
                finally:
                    body.close()
            yield path
        finally:
            path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Bucket=self._bucket, Key=self.object_key(key))
        except PermanentMediaError:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self._bucket, Key=self.object_key(key))

    def direct_upload_url(self, key: str, media_type: str, ttl_seconds: int) -> str | None:
        url: str = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": self.object_key(key), "ContentType": media_type},
            ExpiresIn=ttl_seconds,
            HttpMethod="PUT",
        )
        return url

    def _tmp_path(self) -> Path:
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        return self._tmp_dir

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """A client call; a missing object is a ``PermanentMediaError``, S3 trouble a
        ``TransientFetchError`` (the hash job retries it)."""
        try:
            return getattr(self._client, operation)(*args, **kwargs)
        except Exception as exc:
            where = f"s3://{self._bucket}/{args[2] if len(args) > 2 else kwargs.get('Key')}"
            error = classify_client_error(exc, where)
            if error is exc:
                raise
            if "NoSuchKey" in str(error) or "404" in str(error) or "Not Found" in str(error):
                raise PermanentMediaError(
                    f"the media is no longer in the media store ({error})"
                ) from exc
            raise error from exc


def make_media_store(settings: Settings) -> S3MediaStore | None:
    """The record's ``media_store`` factory: a store only when a media bucket is set."""
    s3 = s3_settings(settings)
    if not s3.media_bucket:
        return None
    return S3MediaStore(s3, settings.data_path / "tmp", settings.web.max_body_bytes)
