"""``hma serve`` runs the S3 listener when queues are configured, and only then."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from s3_fixtures import AWS_ENV, Aws, s3_environ

from hma_framework.serve_prepare import listener_sources
from hma_framework.settings import load_settings
from hma_framework.testing import free_port, make_photo


def test_serve_runs_the_listener_only_when_queues_are_configured() -> None:
    assert listener_sources(load_settings({})) == []
    configured = load_settings({"HMA_S3_QUEUE_URLS": "https://sqs.example/1/q"})
    assert listener_sources(configured) == ["s3"]


def test_listen_without_queues_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(HMA_DATA_DIR=str(tmp_path), HMA_REDIS_URL="redis://127.0.0.1:1/0")
    done = subprocess.run(
        [sys.executable, "-m", "hma_framework", "s3", "listen"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "HMA_S3_QUEUE_URLS" in done.stderr


@pytest.mark.slow
def test_an_object_put_is_hashed_by_a_served_instance(tmp_path: Path, aws: Aws) -> None:
    bucket = aws.new_bucket()
    queue, arn = aws.new_queue()
    aws.notify(bucket, queue_arn=arn)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(AWS_ENV)
    env.update(s3_environ(aws.url, buckets=[{"bucket": bucket}], queue_urls=queue))
    env.update(HMA_WORKERS_PROCESSES="1", HMA_WEB_PROCESSES="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        token, seen = "", []
        while not token:
            line = process.stdout.readline()
            assert line, "hma serve exited"
            seen.append(line)
            token = next(iter(re.findall(r"hma_[0-9a-f]{12}_\S+", line)), "")
        aws.s3.put_object(Bucket=bucket, Key="in/photo.jpg", Body=make_photo(seed=8))
        url = f"http://127.0.0.1:{port}/content/{quote(f'{bucket}/in/photo.jpg', safe='')}"
        deadline = time.monotonic() + 90
        status = None
        while status != "no_match":
            assert time.monotonic() < deadline, f"content is {status!r}"
            time.sleep(0.3)
            try:
                answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            except requests.RequestException:  # the API still starting on a loaded machine
                continue
            status = answer.json().get("status") if answer.status_code == 200 else None
    finally:
        process.send_signal(signal.SIGINT)
        # read() drains what readline() buffered past the token too; communicate() would not
        rest = process.stdout.read() if process.stdout is not None else ""
        process.wait(60)
    output = "".join(seen) + rest
    assert "listener of the s3 content source" in output
    assert process.returncode == 0, output
