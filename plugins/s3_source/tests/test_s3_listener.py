"""Bucket events through SQS: moto's S3 notifies a queue as AWS would, the real ``hma s3
listen`` process records the objects as content, real workers hash, match and act.

Runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hma_s3_source.listener import run_listener
from s3_fixtures import AWS_ENV, Aws, with_s3
from sqlalchemy import func, select

from hma_framework.registry import Registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import ContentRow, ContentSubmissionRow
from hma_framework.testing import make_photo, run_jobs
from tests.test_actions_support import (
    Api,
    Receiver,
    bank_with,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    webhook_handler,
)


@pytest.fixture
def bucket(aws: Aws) -> str:
    return aws.new_bucket()


@pytest.fixture
def queue(aws: Aws, bucket: str) -> str:
    """A queue the bucket notifies of every created object; redelivery after 2 s."""
    url, arn = aws.new_queue(visibility_timeout=2)
    aws.notify(bucket, queue_arn=arn)
    return url


@pytest.fixture
def settings(settings: Settings, moto_url: str, bucket: str, queue: str) -> Settings:
    return with_s3(
        quick_retries(settings),
        moto_url,
        buckets=[{"bucket": bucket, "prefix": "photos/"}],
        queue_urls=queue,
    )


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@contextlib.contextmanager
def listener_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """``hma s3 listen`` in its own process, configured like the test's runtime."""
    env = {
        **os.environ,
        **AWS_ENV,
        **settings.plugin_environ,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "s3", "listen"], env=env, stdin=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)


def wait_until(condition: Callable[[], bool], timeout: float = 30, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def count(runtime: Runtime, table: Any) -> int:
    with runtime.store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def content(runtime: Runtime, content_id: str) -> ContentRow | None:
    with runtime.store.reading() as session:
        return session.scalars(
            select(ContentRow).where(ContentRow.content_id == content_id)
        ).one_or_none()


def test_a_jpeg_put_into_the_bucket_is_hashed_matched_and_fires_a_signed_webhook(
    live_server: str,
    runtime: Runtime,
    worker_runtime: Runtime,
    aws: Aws,
    bucket: str,
    queue: str,
    settings: Settings,
) -> None:
    photo = make_photo(seed=11)
    photo_path = runtime.settings.data_path / "photo.jpg"
    photo_path.write_bytes(photo)
    pdq = runtime.hashers["pdq"].hash_file(photo_path).value
    bank_with(runtime, "known-bad", signal=pdq, tags=["csam"])
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)
    receiver = Receiver()
    secret = new_secret()
    try:
        webhook_handler(admin, "moderation", receiver.url + "/hooks", [secret])
        rule(
            admin,
            "bucket-csam",
            "moderation",
            [{"label": "tag", "equals": "csam"}, {"field": "s3_bucket", "equals": bucket}],
        )
        key = "photos/my photo+1 é.jpg"
        aws.s3.put_object(Bucket=bucket, Key=key, Body=photo, ContentType="image/jpeg")
        aws.s3.put_object(Bucket=bucket, Key="other/skipped.jpg", Body=photo)  # prefix filter
        aws.s3.put_object(Bucket=bucket, Key="photos/empty.jpg", Body=b"")  # zero-size
        aws.s3.put_object(Bucket=bucket, Key="photos/gone.jpg", Body=photo)
        with listener_process(settings):
            wait_until(lambda: count(runtime, ContentRow) == 2 and aws.messages_left(queue) == 0)
        aws.s3.delete_object(Bucket=bucket, Key="photos/gone.jpg")  # before any worker runs
        run_jobs(worker_runtime)

        matched = content(runtime, f"{bucket}/{key}")
        assert matched is not None and matched.status == "actioned", matched and matched.error
        assert matched.content_url == f"s3://{bucket}/{key}"
        assert matched.additional_fields == [f"s3_bucket:{bucket}", f"s3_key:{key}"]
        gone = content(runtime, f"{bucket}/photos/gone.jpg")
        assert gone is not None and gone.status == "failed" and "NoSuchKey" in (gone.error or "")
        assert content(runtime, f"{bucket}/other/skipped.jpg") is None
        assert content(runtime, f"{bucket}/photos/empty.jpg") is None
        [hook] = receiver.received
        body = hook.verify(secret)
        assert body["data"]["content_id"] == f"{bucket}/{key}"
        assert body["data"]["rules_fired"] == ["bucket-csam"]
        assert f"s3_key:{key}" in body["data"]["additional_fields"]
    finally:
        receiver.close()


def test_a_listener_killed_mid_batch_loses_and_doubles_nothing(
    runtime: Runtime, worker_runtime: Runtime, aws: Aws, bucket: str, queue: str, settings: Settings
) -> None:
    total = 40
    for number in range(total):
        aws.s3.put_object(
            Bucket=bucket, Key=f"photos/{number}.jpg", Body=make_photo(64, 48, seed=number)
        )
    with listener_process(settings) as listener:
        wait_until(lambda: count(runtime, ContentRow) > 0, poll=0.005)
        listener.send_signal(signal.SIGKILL)
        listener.wait(10)
    recorded_at_kill = count(runtime, ContentRow)
    assert 0 < recorded_at_kill < total, "the kill should land mid-way"
    with listener_process(settings):  # unfinished messages come back after 2 s
        wait_until(lambda: count(runtime, ContentRow) == total and aws.messages_left(queue) == 0)
    assert count(runtime, ContentSubmissionRow) == total  # no content recorded twice
    run_jobs(worker_runtime)
    with runtime.store.reading() as session:
        statuses = session.execute(
            select(ContentRow.status, func.count()).group_by(ContentRow.status)
        ).all()
    assert dict(statuses) == {"no_match": total}  # every one hashed: no lost hash job


@contextlib.contextmanager
def listener_thread(runtime: Runtime) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run_listener, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)


def test_the_same_object_twice_is_one_content_and_a_new_version_is_processed_again(
    runtime: Runtime, worker_runtime: Runtime, aws: Aws, bucket: str, queue: str
) -> None:
    key = "photos/again.jpg"
    with listener_thread(runtime):
        aws.s3.put_object(Bucket=bucket, Key=key, Body=make_photo(seed=1))
        aws.s3.put_object(Bucket=bucket, Key=key, Body=make_photo(seed=1))  # same ETag
        wait_until(lambda: aws.messages_left(queue) == 0 and count(runtime, ContentRow) == 1)
        run_jobs(worker_runtime)
        assert count(runtime, ContentSubmissionRow) == 1
        aws.s3.put_object(Bucket=bucket, Key=key, Body=make_photo(seed=2))  # a new version
        wait_until(lambda: count(runtime, ContentSubmissionRow) == 2)
    row = content(runtime, f"{bucket}/{key}")
    assert row is not None and row.status == "submitted"
    run_jobs(worker_runtime)
    row = content(runtime, f"{bucket}/{key}")
    assert row is not None and row.status == "no_match"


def test_events_wrapped_in_sns_envelopes_arrive_through_sqs(
    runtime: Runtime, worker_runtime: Runtime, aws: Aws, bucket: str, queue: str
) -> None:
    """Bucket -> SNS topic -> SQS queue, the fan-out layout, with a test event on the way."""
    topic = aws.new_topic()
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    aws.notify(bucket, topic_arn=topic)  # replaces the direct queue notification
    with listener_thread(runtime):
        aws.s3.put_object(Bucket=bucket, Key="photos/fan out.jpg", Body=make_photo(seed=4))
        wait_until(lambda: aws.messages_left(queue) == 0 and count(runtime, ContentRow) == 1)
    run_jobs(worker_runtime)
    row = content(runtime, f"{bucket}/photos/fan out.jpg")
    assert row is not None and row.status == "no_match"


def test_a_received_batch_is_deleted_with_one_call(
    runtime: Runtime, aws: Aws, bucket: str, queue: str
) -> None:
    """Messages are deleted once recorded, a batch per call rather than a call per message
    (each boto3 call costs the listener more CPU than recording an object)."""
    from collections import Counter

    from hma_s3_source.listener import poll_queue
    from hma_s3_source.objects import client
    from hma_s3_source.s3_settings import s3_settings

    total = 12
    for number in range(total):
        aws.s3.put_object(Bucket=bucket, Key=f"photos/b{number}.jpg", Body=b"jpeg-ish")
    s3 = s3_settings(runtime.settings)
    sqs = client(s3, "sqs")
    calls: Counter[str] = Counter()
    sqs.meta.events.register("before-call.sqs", lambda model, **_: calls.update([model.name]))
    stop = threading.Event()
    thread = threading.Thread(target=poll_queue, args=(runtime, s3, queue, stop, sqs))
    thread.start()
    try:
        wait_until(lambda: count(runtime, ContentRow) == total and aws.messages_left(queue) == 0)
    finally:
        stop.set()
        thread.join(30)
    assert count(runtime, ContentSubmissionRow) == total
    assert calls["DeleteMessage"] == 0
    assert 1 <= calls["DeleteMessageBatch"] < total
