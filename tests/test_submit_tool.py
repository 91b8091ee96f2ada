"""``hma submit`` against a live server: a 10,000-hash CSV, a folder hashed locally, retries."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.submit_tool import Sender, Summary
from hma_framework.testing import make_photo

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def hma_submit(live_server: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HMA_API_URL": live_server, "HMA_API_KEY": token}
    return subprocess.run(
        [sys.executable, "-m", "hma_framework", "submit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def token(runtime: Runtime) -> str:
    return runtime.api_keys.create("backfill", ["submit"]).token


def test_a_csv_of_10000_hashes_is_sent_in_batches_and_summarized(
    live_server: str, runtime: Runtime, token: str, tmp_path: Path
) -> None:
    Banks(runtime.store).create_bank("known")
    Banks(runtime.store).add_member("known", NewMember(signals=(("pdq", PDQ),)))
    source = tmp_path / "hashes.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["content_id", "content_type", "signal_type", "signal_value"])
        for n in range(10_000):
            value = PDQ if n % 20 == 0 else f"{n:064x}"
            writer.writerow([f"post-{n}", "photo", "pdq", value])
        writer.writerow(["bad-1", "photo", "pdq", "not-a-hash"])
    result = hma_submit(live_server, token, str(source), "--batch-size", "1000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 10001, accepted 10000, matched 500, failed 1"
    assert "bad-1: signal_value is not a valid pdq hash" in result.stderr
    assert runtime.content.count_by_status() == {"matched": 500, "no_match": 9500}


def test_a_folder_hashed_locally_sends_only_hashes(
    live_server: str, runtime: Runtime, token: str, tmp_path: Path
) -> None:
    folder = tmp_path / "media"
    (folder / "sub").mkdir(parents=True)
    photos = [make_photo(seed=n) for n in range(3)]
    for n, photo in enumerate(photos):
        (folder / ("sub" if n else "") / f"p{n}.jpg").write_bytes(photo)
    (folder / "notes.txt").write_text("not media")
    banked = runtime.hashers["pdq"].hash_file(folder / "p0.jpg").value
    Banks(runtime.store).create_bank("known")
    Banks(runtime.store).add_member("known", NewMember(signals=(("pdq", banked),)))
    result = hma_submit(live_server, token, str(folder), "--hash-locally", "--processes", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 3, accepted 3, matched 1, failed 0"
    row = runtime.content.get_row(_pk(runtime, "sub/p1.jpg"))
    assert row is not None and row.submission_method == "hash"


def _pk(runtime: Runtime, content_id: str) -> int:
    from hma_framework.store.content_queries import ContentQueries

    pk = ContentQueries(runtime.store).content_pk(content_id)
    assert pk is not None
    return pk


def test_sampling_sends_a_share(
    live_server: str, runtime: Runtime, token: str, tmp_path: Path
) -> None:
    source = tmp_path / "items.ndjson"
    lines = [
        {"content_id": f"s{n}", "signal_type": "pdq", "signal_value": f"{n:064x}"}
        for n in range(400)
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = hma_submit(live_server, token, str(source), "--sample", "0.25", "--seed", "7")
    assert result.returncode == 0, result.stderr
    sent = int(result.stdout.split()[1].rstrip(","))
    assert 50 < sent < 150
    assert result.stdout.strip() == f"sent {sent}, accepted {sent}, matched 0, failed 0"
    assert sum(runtime.content.count_by_status().values()) == sent
    again = hma_submit(live_server, token, str(source), "--sample", "0.25", "--seed", "7")
    assert again.stdout == result.stdout, "a seeded sample repeats"
    assert sum(runtime.content.count_by_status().values()) == sent


class _Flaky:
    """A loopback server answering 503, then 429 with Retry-After, then a batch answer."""

    def __init__(self) -> None:
        self.answers = [(503, {}), (429, {"Retry-After": "0"})]
        self.seen = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                flaky.seen += 1
                status, headers = flaky.answers.pop(0) if flaky.answers else (200, {})
                results = [
                    {"content_id": i["content_id"], "submit_successful": True, "matched": True}
                    for i in body["items"]
                ]
                payload = json.dumps({"results": results} if status == 200 else {}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky() -> Iterator[_Flaky]:
    server = _Flaky()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_429_and_5xx_are_retried_and_give_up_after_the_retries(flaky: _Flaky) -> None:
    url = f"http://127.0.0.1:{flaky.server.server_port}"
    items = [{"content_id": "a", "signal_type": "pdq", "signal_value": PDQ}]
    summary = Summary()
    Sender(url, "k", retries=2, backoff=0.01).send_hashes(items, summary)
    assert flaky.seen == 3 and (summary.sent, summary.accepted, summary.matched) == (1, 1, 1)

    flaky.answers = [(503, {})] * 3
    summary = Summary()
    Sender(url, "k", retries=2, backoff=0.01).send_hashes(items, summary)
    assert (summary.sent, summary.accepted, summary.failed) == (1, 0, 1)
    assert summary.errors == ["HTTP 503: {}"]


@pytest.mark.slow
def test_a_csv_of_10000_hashes_is_sent_to_a_running_hma_serve(tmp_path: Path) -> None:
    """The issue's promise as a user meets it: `hma serve` in an empty folder, then the tool."""
    import requests

    from hma_framework.testing import served_instance

    source = tmp_path / "hashes.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["content_id", "content_type", "signal_type", "signal_value"])
        for n in range(10_000):
            writer.writerow([f"post-{n}", "photo", "pdq", PDQ if n % 50 == 0 else f"{n:064x}"])
    folder = tmp_path / "instance"
    folder.mkdir()
    with served_instance(folder) as instance:
        auth = {"Authorization": f"Bearer {instance.admin_token}"}
        created = requests.post(f"{instance.url}/banks", json={"name": "known"}, headers=auth)
        assert created.status_code == 201, created.text
        member = {"signal_type": "pdq", "signal_value": PDQ}
        added = requests.post(f"{instance.url}/banks/known/members", json=member, headers=auth)
        assert added.status_code == 201, added.text
        _wait_until_every_api_process_matches(instance.url, auth, PDQ)
        result = hma_submit(instance.url, instance.admin_token, str(source), "--batch-size", "500")
        stats = requests.get(f"{instance.url}/stats?interval=day", headers=auth, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 10000, accepted 10000, matched 200, failed 0"
    assert stats.status_code == 200, stats.text
    intervals = stats.json()["intervals"]
    assert sum(entry["submissions"] for entry in intervals) == 10_000
    assert sum(entry["banks"].get("known", {}).get("matched_live", 0) for entry in intervals) == 200


def _wait_until_every_api_process_matches(url: str, auth: dict[str, str], signal: str) -> None:
    """A new member is matchable in each API process within its refresh interval, not at once.

    Lookups on fresh connections land on either gunicorn process; 20 matches in a row make it
    all but certain both have refreshed before the tool starts sending.
    """
    import time

    import requests

    deadline, in_a_row = time.monotonic() + 30, 0
    while in_a_row < 20:
        assert time.monotonic() < deadline, "the new member never became matchable"
        found = requests.get(
            f"{url}/lookup", params={"signal_type": "pdq", "signal": signal}, headers=auth
        )
        in_a_row = in_a_row + 1 if found.ok and found.json().get("matches") else 0
        if not in_a_row:
            time.sleep(0.1)
