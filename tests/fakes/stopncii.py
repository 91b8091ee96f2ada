"""A loopback StopNCII API: ``/FetchHashes`` pages and ``/SubmitFeedback``.

``FetchHashes`` answers pages of hash records newer than ``startTimestamp``, continued by an
opaque ``nextPageToken`` while ``hasMoreRecords``; each record carries its aggregate
``hashStatus`` (``Active``, ``Withdrawn``...). Both keys are checked on every request
(``x-functions-key`` per endpoint, ``Ocp-Apim-Subscription-Key``). Feedback posts are kept.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

FETCH_KEY = "fetch-function-key-secret-1"
FEEDBACK_KEY = "feedback-function-key-secret-2"
SUBSCRIPTION_KEY = "subscription-key-secret-3"


@attrs.define
class FakeStopNCII:
    page_size: int = 2
    records: list[dict[str, Any]] = attrs.field(factory=list)
    feedback: list[dict[str, Any]] = attrs.field(factory=list)
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    base_url: str = ""

    def add(self, hash_value: str, at: int, status: str = "Active", kind: str = "ImagePDQ") -> None:
        self.records = [r for r in self.records if r["hashValue"] != hash_value]
        self.records.append(
            {
                "lastModtimestamp": at,
                "signalType": kind,
                "hashValue": hash_value,
                "hashStatus": status,
                "caseNumbers": {"case-1": status},
                "CSPFeedbacks": [
                    {"feedbackValue": "Blocked", "tags": ["ncii"], "source": "Another CSP"}
                ],
            }
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self, function_key: str) -> bool:
        ok = (
            self.headers.get("x-functions-key") == function_key
            and self.headers.get("Ocp-Apim-Subscription-Key") == SUBSCRIPTION_KEY
        )
        if not ok:
            self._answer(401, {"message": "Access denied due to invalid subscription key."})
        return ok

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        fake.requests.append({"path": url.path, "query": query})
        if url.path != "/v1/FetchHashes" or not self._authorized(FETCH_KEY):
            if url.path != "/v1/FetchHashes":
                self._answer(404, {"message": "not found"})
            return
        start = int(query.get("startTimestamp", "0"))
        offset = int(query.get("nextPageToken") or 0)
        newer = sorted(
            (r for r in fake.records if r["lastModtimestamp"] >= start),
            key=lambda r: r["lastModtimestamp"],
        )
        page = newer[offset : offset + fake.page_size]
        more = offset + fake.page_size < len(newer)
        self._answer(
            200,
            {
                "count": len(page),
                "nextPageToken": str(offset + fake.page_size) if more else None,
                "nextSetTimestamp": max((r["lastModtimestamp"] for r in newer), default=start),
                "hasMoreRecords": more,
                "hashRecords": page,
            },
        )

    def do_POST(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if url.path != "/v1/SubmitFeedback":
            self._answer(404, {"message": "not found"})
            return
        if self._authorized(FEEDBACK_KEY):
            fake.feedback.append(body)
            self._answer(200, {})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeStopNCII) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@contextmanager
def fake_stopncii(fake: FakeStopNCII | None = None) -> Iterator[FakeStopNCII]:
    fake = fake or FakeStopNCII()
    server = _Server(fake)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
