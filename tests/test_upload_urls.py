"""Upload URLs: bound to their submission, built from the public URL, redacted in logs."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs
import requests

from hma_framework.runtime import Runtime
from hma_framework.serve import _gunicorn_argv
from hma_framework.store.content import AWAITING_UPLOAD, Submission
from hma_framework.testing import Tokens, free_port, make_photo, run_jobs
from hma_framework.web.log_redaction import RedactingFilter, redact

PUT_URL = {"content_id": "u-1", "content_type": "photo", "file_type": "image/jpeg"}


def _put_url(base: str, token: str, **extra: Any) -> str:
    response = requests.post(
        f"{base}/submit/put-url/",
        json={**PUT_URL, **extra},
        headers=Tokens.header(token),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["presigned_url"]
    return url


def test_an_old_upload_url_is_refused_after_a_forced_resubmission(
    live_server: str, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens
) -> None:
    old = _put_url(live_server, tokens.submit)
    new = _put_url(live_server, tokens.submit, force_resubmit=True)
    assert old != new
    refused = requests.put(old, data=make_photo(seed=1), timeout=10)
    assert refused.status_code == 409, refused.text
    assert "earlier submission" in refused.json()["message"]
    accepted = requests.put(new, data=make_photo(seed=2), timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert requests.put(old, data=make_photo(seed=1), timeout=10).status_code == 409
    run_jobs(worker_runtime)
    record = requests.get(
        f"{live_server}/content/u-1", headers=Tokens.header(tokens.read), timeout=10
    ).json()
    assert record["status"] == "no_match"


def test_an_old_url_cannot_claim_the_new_submission_even_past_the_first_check(
    runtime: Runtime,
) -> None:
    """The claim itself is bound: a resubmission between check and claim still refuses it."""

    def put_url_submission() -> Submission:
        return Submission(
            "race",
            "photo",
            "put_url",
            initial_status=AWAITING_UPLOAD,
            upload_expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
        )

    _, content_pk = runtime.content.submit(put_url_submission(), force=False)
    with runtime.store.reading() as session:
        first = runtime.content.latest_submission_pk(content_pk, session)
    runtime.content.submit(put_url_submission(), force=True)
    assert first is not None
    assert not runtime.content.claim_upload(content_pk, "k1", first)
    with runtime.store.reading() as session:
        second = runtime.content.latest_submission_pk(content_pk, session)
    assert second is not None and second != first
    assert runtime.content.claim_upload(content_pk, "k2", second)


def test_presigned_url_uses_the_public_url_not_the_host_header(
    runtime: Runtime, tokens: Tokens
) -> None:
    from hma_framework.web.app import create_app

    public = attrs.evolve(
        runtime.settings, web=attrs.evolve(runtime.settings.web, public_url="https://hma.example")
    )
    app = create_app(attrs.evolve(runtime, settings=public))
    response = app.test_client().post(
        "/submit/put-url/",
        json=PUT_URL,
        headers={**Tokens.header(tokens.submit), "Host": "evil.example"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["presigned_url"].startswith("https://hma.example/upload/")


def test_redaction_of_tokens_and_keys() -> None:
    line = '127.0.0.1 "PUT /upload/eyJjIjo.xYz-_1 HTTP/1.1" 200 "Authorization: Bearer hma_a1_b"'
    assert redact(line) == (
        '127.0.0.1 "PUT /upload/[redacted] HTTP/1.1" 200 "Authorization: Bearer [redacted]"'
    )
    record = logging.LogRecord("x", logging.INFO, "f", 1, "got %s", ("/upload/abc.def",), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "got /upload/[redacted]"


def _wait_until_up(base: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited early"
        try:
            requests.get(f"{base}/status", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not start")


def test_gunicorn_access_log_redacts_upload_tokens(
    runtime: Runtime, tokens: Tokens, tmp_path: Path
) -> None:
    port = free_port()
    settings = attrs.evolve(
        runtime.settings,
        log_level="INFO",
        web=attrs.evolve(runtime.settings.web, port=port, processes=1, threads=2),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env |= {
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            _gunicorn_argv(settings), env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_up(base, process)
            url = _put_url(base, tokens.submit)
            token = url.rsplit("/", 1)[1]
            assert requests.put(url, data=make_photo(seed=3), timeout=10).status_code == 200
            assert requests.put(url + "x", data=b"1", timeout=10).status_code == 403
        finally:
            process.terminate()
            process.wait(20)
    logged = log_path.read_text()
    assert "PUT /upload/[redacted]" in logged, logged[-2000:]
    assert token not in logged and tokens.submit not in logged
