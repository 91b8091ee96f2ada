"""The backfill and sampling tool behind ``hma submit``: read items, send them in batches.

Items come from a CSV or NDJSON file (``content_id`` with ``signal_type``/``signal_value``,
or ``url``, or a local ``path``; optional ``content_type`` and ``additional_fields``) or from
walking a folder. Hashes go to ``/submit/hashes/`` in batches, several requests at a time;
files are hashed here first with ``--hash-locally`` (in worker processes: hashing holds the
GIL), otherwise sent as bytes; URLs go to ``/submit/url/``. Requests answered 429 or 5xx, or
not answered, are retried with backoff (``Retry-After`` honoured).
"""

from __future__ import annotations

import base64
import concurrent.futures
import csv
import functools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import requests

from hma_framework.http_headers import parse_retry_after

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
RETRYABLE = {429, 500, 502, 503, 504}


@attrs.define
class Summary:
    sent: int = 0
    accepted: int = 0
    matched: int = 0
    failed: int = 0
    errors: list[str] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def add(self, sent: int, accepted: int, matched: int, errors: Sequence[str]) -> None:
        with self.lock:
            self.sent += sent
            self.accepted += accepted
            self.matched += matched
            self.failed += sent - accepted
            self.errors.extend(errors[: max(0, 20 - len(self.errors))])


def content_type_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "photo" if suffix in PHOTO_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def read_items(source: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV/NDJSON file, or one item per media file under a folder."""
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            if content_type_of(path):
                yield {"content_id": str(path.relative_to(source)), "path": str(path)}
        return
    with open(source, newline="", encoding="utf-8") as handle:
        if source.suffix.lower() == ".csv":
            for row in csv.DictReader(handle):
                yield {k: v for k, v in row.items() if k and v not in (None, "")}
        else:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def sampled(items: Iterable[dict[str, Any]], share: float, seed: int | None) -> Iterator[Any]:
    chooser = random.Random(seed)
    return (item for item in items if share >= 1 or chooser.random() < share)


def _fields(item: dict[str, Any]) -> list[str]:
    fields = item.get("additional_fields") or []
    return [f for f in fields.split(";") if f] if isinstance(fields, str) else list(fields)


def base_body(item: dict[str, Any]) -> dict[str, Any]:
    path = Path(item["path"]) if item.get("path") else None
    content_type = item.get("content_type") or (content_type_of(path) if path else None)
    return {
        "content_id": str(item.get("content_id") or ""),
        "content_type": content_type or "photo",
        "additional_fields": _fields(item),
    }


# --- local hashing, in worker processes -------------------------------------------------------

_HASHERS: dict[str, Any] = {}
_APPLIES: dict[str, tuple[str, ...]] = {}


def _init_hashers() -> None:
    from hma_framework.registry import make_registry
    from hma_framework.settings import load_settings

    settings = load_settings()
    registry = make_registry(settings)
    for name, record in registry.signal_types.items():
        _HASHERS[name] = record.make_hasher(settings)
        _APPLIES[name] = record.applies_to()


def hash_item(item: dict[str, Any]) -> dict[str, Any]:
    """The item with the first applicable signal computed, or with an ``error``."""
    if not _HASHERS:
        _init_hashers()
    body = base_body(item)
    wanted = item.get("signal_type")
    for name, hasher in _HASHERS.items():
        if body["content_type"] in _APPLIES[name] and wanted in (None, name):
            try:
                value = hasher.hash_file(Path(item["path"])).value
            except Exception as exc:  # an unreadable file fails its item, not the run
                return {**item, "error": f"hashing failed: {exc}"}
            return {**item, "signal_type": name, "signal_value": value}
    return {**item, "error": f"no signal type hashes {body['content_type']} content"}


# --- sending --------------------------------------------------------------------------------


@attrs.frozen
class Sender:
    base_url: str
    token: str
    retries: int = 5
    timeout: float = 60.0
    backoff: float = 0.5
    _local: threading.local = attrs.field(factory=threading.local)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token}"
            self._local.session = session
        return session

    def post(self, path: str, body: Any) -> requests.Response | str:
        """The answer, or why there is none after the retries."""
        problem = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._session().post(
                    self.base_url.rstrip("/") + path, json=body, timeout=self.timeout
                )
            except requests.RequestException as exc:
                problem = f"no answer: {exc}"
                wait = self.backoff * 2**attempt
            else:
                if response.status_code not in RETRYABLE:
                    return response
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                after = parse_retry_after(response.headers.get("Retry-After"))
                wait = after if after is not None else self.backoff * 2**attempt
            if attempt < self.retries:
                time.sleep(min(wait, 60.0))
        return problem

    def send_hashes(self, items: Sequence[dict[str, Any]], summary: Summary) -> None:
        bodies = [
            {
                **base_body(i),
                "signal_type": i.get("signal_type"),
                "signal_value": i.get("signal_value"),
            }
            for i in items
        ]
        answer = self.post("/submit/hashes/", {"items": bodies})
        if isinstance(answer, str) or answer.status_code != 200:
            why = (
                answer
                if isinstance(answer, str)
                else f"HTTP {answer.status_code}: {answer.text[:200]}"
            )
            summary.add(len(items), 0, 0, [why])
            return
        results = answer.json()["results"]
        ok = [r for r in results if r.get("submit_successful")]
        errors = [f"{r.get('content_id')}: {r.get('message')}" for r in results if r not in ok]
        summary.add(len(items), len(ok), sum(1 for r in ok if r.get("matched")), errors)

    def send_one(self, item: dict[str, Any], summary: Summary) -> None:
        body = base_body(item)
        if item.get("url"):
            path, body["content_url"] = "/submit/url/", item["url"]
        else:
            path = "/submit/bytes/"
            body["content_bytes"] = base64.b64encode(Path(item["path"]).read_bytes()).decode()
        answer = self.post(path, body)
        if isinstance(answer, str) or answer.status_code != 200:
            why = (
                answer
                if isinstance(answer, str)
                else f"HTTP {answer.status_code}: {answer.text[:200]}"
            )
            summary.add(1, 0, 0, [f"{item.get('content_id')}: {why}"])
        else:
            summary.add(1, 1, 0, [])


def run(
    items: Iterable[dict[str, Any]],
    sender: Sender,
    *,
    batch_size: int,
    concurrency: int,
    hash_locally: bool,
    hash_processes: int | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> Summary:
    """Send every item; ``progress`` is called with the number of items each step finished."""
    summary = Summary()
    pool = concurrent.futures.ProcessPoolExecutor(hash_processes) if hash_locally else None
    with concurrent.futures.ThreadPoolExecutor(concurrency) as threads:
        pending: set[concurrent.futures.Future[None]] = set()

        def submit(task: Callable[[], None], count: int) -> None:
            while len(pending) >= concurrency * 2:  # bounded: a huge file is streamed
                done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
                pending.difference_update(done)
            future = threads.submit(task)
            future.add_done_callback(lambda _: progress(count))
            pending.add(future)

        batch: list[dict[str, Any]] = []
        for item in _prepared(items, pool):
            if item.get("error"):
                summary.add(1, 0, 0, [f"{item.get('content_id')}: {item['error']}"])
                progress(1)
            elif item.get("signal_value"):
                batch.append(item)
                if len(batch) >= batch_size:
                    chunk, batch = batch, []
                    submit(functools.partial(sender.send_hashes, chunk, summary), len(chunk))
            else:
                submit(functools.partial(sender.send_one, item, summary), 1)
        if batch:
            submit(functools.partial(sender.send_hashes, batch, summary), len(batch))
        concurrent.futures.wait(pending)
    if pool is not None:
        pool.shutdown()
    return summary


def _prepared(
    items: Iterable[dict[str, Any]], pool: concurrent.futures.ProcessPoolExecutor | None
) -> Iterator[dict[str, Any]]:
    if pool is None:
        yield from items
        return
    direct: list[dict[str, Any]] = []
    to_hash: list[dict[str, Any]] = []
    for item in items:
        (to_hash if item.get("path") and not item.get("signal_value") else direct).append(item)
        if len(to_hash) >= 256:
            yield from pool.map(hash_item, to_hash, chunksize=8)
            to_hash = []
        yield from direct
        direct = []
    yield from pool.map(hash_item, to_hash, chunksize=8)
