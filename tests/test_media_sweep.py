"""No media is left on disk forever: forced resubmissions delete theirs, reconcile sweeps."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any

import requests

from hma_framework.pipeline.media_sweep import SWEPT_MARKER, safe_age_seconds, sweep_media
from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens, make_photo, run_jobs


def _media_files(runtime: Runtime) -> set[str]:
    return {p.name for p in (runtime.settings.data_path / "media").iterdir()}


def _submit_bytes(client: Any, token: str, photo: bytes, **extra: Any) -> None:
    response = client.post(
        "/submit/bytes/",
        json={
            "content_id": "m-1",
            "content_type": "photo",
            "content_bytes": base64.b64encode(photo).decode(),
            **extra,
        },
        headers=Tokens.header(token),
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_forced_resubmission_of_bytes_deletes_the_queued_media(
    client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, tmp_path: Path
) -> None:
    first, second = make_photo(seed=1), make_photo(seed=2)
    _submit_bytes(client, tokens.submit, first)
    before = _media_files(runtime)
    assert len(before) == 1
    _submit_bytes(client, tokens.submit, second, force_resubmit=True)  # first job still queued
    after = _media_files(runtime)
    assert len(after) == 1 and not after & before, "the superseded file is gone"

    # Both jobs run: the old one hashes the new media or skips.
    run_jobs(worker_runtime)
    record = client.get("/content/m-1", headers=Tokens.header(tokens.read)).json
    assert record["status"] == "no_match", record
    reference = tmp_path / "second.jpg"
    reference.write_bytes(second)
    assert record["signals"][0]["signal_value"] == runtime.hashers["pdq"].hash_file(reference).value
    assert _media_files(runtime) == set()


def test_forced_resubmission_of_an_uploaded_put_url_deletes_its_media(
    live_server: str, runtime: Runtime, tokens: Tokens
) -> None:
    body = {"content_id": "m-2", "content_type": "photo", "file_type": "image/jpeg"}
    headers = Tokens.header(tokens.submit)
    url = requests.post(f"{live_server}/submit/put-url/", json=body, headers=headers, timeout=10)
    assert requests.put(url.json()["presigned_url"], data=make_photo(), timeout=10).ok
    assert len(_media_files(runtime)) == 1  # uploaded, hash job queued
    again = requests.post(
        f"{live_server}/submit/put-url/",
        json={**body, "force_resubmit": True},
        headers=headers,
        timeout=10,
    )
    assert again.status_code == 200, again.text
    assert _media_files(runtime) == set()


def _age(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_reconcile_sweeps_old_unreferenced_media_and_partial_downloads(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    old = safe_age_seconds(runtime) + 60
    _submit_bytes(client, tokens.submit, make_photo(seed=3))  # referenced: kept however old
    (referenced,) = _media_files(runtime)
    media = runtime.settings.data_path / "media"
    tmp = runtime.settings.data_path / "tmp"
    tmp.mkdir(exist_ok=True)
    _age(media / referenced, old)
    orphan = media / ("a" * 32)
    orphan.write_bytes(b"left by a resubmitted hash")
    _age(orphan, old)
    young = media / ("b" * 32)
    young.write_bytes(b"written a moment before its row commits")
    partial = media / f".{'c' * 32}.partial"
    partial.write_bytes(b"half")
    _age(partial, old)
    download = tmp / "fetch-killed"
    download.write_bytes(b"half a download")
    _age(download, old)
    in_flight = tmp / "fetch-running"
    in_flight.write_bytes(b"downloading now")

    report = reconcile_runtime(runtime)

    assert report["swept_media"] == 1 and report["swept_partial"] == 2, report
    assert _media_files(runtime) == {referenced, young.name}
    assert {p.name for p in tmp.iterdir()} == {"fetch-running"}
    late = media / ("d" * 32)
    late.write_bytes(b"orphaned after the sweep")
    _age(late, old)
    again = reconcile_runtime(runtime)  # too soon: a sweep lists the whole folder
    assert again["swept_media"] == 0 and again["swept_partial"] == 0 and late.exists()
    assert sweep_media(runtime, force=True)["swept_media"] == 1 and not late.exists()
    later = time.time() + safe_age_seconds(runtime) / 4 + 1
    assert sweep_media(runtime, now=later) == {"swept_media": 0, "swept_partial": 0}
    assert abs((runtime.settings.data_path / SWEPT_MARKER).stat().st_mtime - later) < 1
