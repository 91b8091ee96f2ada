"""A loopback NCMEC hash-sharing API: ``/v2/entries`` over a ``from``/``to`` time window.

Answers the XML python-threatexchange's client reads: ``<images maxTimestamp=...>`` holding
``<image>`` entries (id, member, classification, fingerprints) and ``<deletedImage>``
tombstones, in one page (an empty ``<paging><next/>``). Windows are read as UTC, so a client
sending local time labelled ``Z`` gets the wrong entries. Basic auth is checked.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import attrs

USER, PASSWORD = "esp-user", "esp-password-secret"
_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@attrs.define
class Entry:
    id: str
    at: int
    pdq: str = ""
    md5: str = ""
    member: int = 42
    classification: str = "A1"
    deleted: bool = False

    def xml(self) -> str:
        tag = "deletedImage" if self.deleted else "image"
        prints = "".join(
            f"<{name}>{escape(value)}</{name}>"
            for name, value in (("md5", self.md5), ("pdq", self.pdq))
            if value
        )
        body = (
            f"<id>{escape(self.id)}</id><member id='{self.member}'>ESP {self.member}</member>"
            f"<classification>{escape(self.classification)}</classification>"
            f"<fingerprints>{prints}</fingerprints>"
        )
        return f"<{tag}>{body}</{tag}>"


@attrs.define
class FakeNCMEC:
    entries: list[Entry] = attrs.field(factory=list)
    windows: list[tuple[str, str]] = attrs.field(factory=list)
    base_url: str = ""


def _parse(value: str) -> int:
    return int(dt.datetime.strptime(value, _FORMAT).replace(tzinfo=dt.UTC).timestamp())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: str) -> None:
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        fake = self.server.fake
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._answer(401, "<error>unauthorized</error>")
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/v2/entries":
            self._answer(404, "<error>not found</error>")
            return
        query = dict(urllib.parse.parse_qsl(url.query))
        fake.windows.append((query["from"], query["to"]))
        start, end = _parse(query["from"]), _parse(query["to"])
        chosen = [e for e in fake.entries if start <= e.at <= end]
        newest = max((e.at for e in chosen), default=start)
        stamp = dt.datetime.fromtimestamp(newest, dt.UTC).strftime(_FORMAT)
        images = "".join(e.xml() for e in chosen)
        self._answer(
            200,
            f"<?xml version='1.0'?><queryResult><images maxTimestamp='{stamp}'>{images}"
            "</images><paging><next></next></paging></queryResult>",
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeNCMEC) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@contextmanager
def fake_ncmec(fake: FakeNCMEC | None = None) -> Iterator[FakeNCMEC]:
    fake = fake or FakeNCMEC()
    server = _Server(fake)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
