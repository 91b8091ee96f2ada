"""Media from S3 buckets: the hma_s3_source plugin.

A content source for ``s3://bucket/key`` locations (any S3 endpoint: AWS, MinIO, Ceph, R2),
bucket subscriptions whose ObjectCreated events become content with no API call, an SQS
listener (``hma s3 listen``) and an HTTP endpoint (``POST /sources/s3/events``) for those
events, and, with ``HMA_S3_MEDIA_BUCKET``, S3 as the media store with presigned uploads.
boto3 is imported only inside this plugin.
"""

from __future__ import annotations

from collections.abc import Iterator

from hma_framework.hookspecs import hookimpl
from hma_framework.types import ContentSourceRecord
from hma_s3_source.listener import listening_enabled, run_listener
from hma_s3_source.media_store import make_media_store
from hma_s3_source.objects import SCHEME, make_s3_source
from hma_s3_source.s3_settings import S3_SETTINGS


@hookimpl
def hma_content_sources() -> Iterator[ContentSourceRecord]:
    from hma_s3_source.endpoint import blueprint

    yield ContentSourceRecord(
        name="s3",
        schemes=(SCHEME,),
        factory=make_s3_source,
        blueprint=blueprint,
        listener=run_listener,
        listener_enabled=listening_enabled,
        settings=S3_SETTINGS,
        media_store=make_media_store,
    )
