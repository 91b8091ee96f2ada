"""A loopback NCMEC hash-sharing API: ``/v2/entries`` over a ``from``/``to`` time window.

Answers the XML python-threatexchange's client reads: ``<images maxTimestamp=...>`` holding
``<image>`` entries (id, member, classification, fingerprints) and ``<deletedImage>``
tombstones, ``page_size`` to a page; a window with more carries ``<paging><next>``, a path
(with ``start``/``size``/``max``) the client appends to the base URL. Windows are read as UTC,
so a client sending local time labelled ``Z`` gets the wrong entries. Feedback: the negative
reasons of a fingerprint type (``/v2/feedback/<type>/reasons``) and ``PUT
/v2/entries/<esp>/<entry>/<type>/feedback`` votes, kept. Basic auth is checked.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.sax.saxutils import escape

import attrs

from tests.fakes.loopback import FakeHandler, page, serve

USER, PASSWORD = "esp-user", "esp-password-secret"
REASON_GUID = "4a8f1f1e-0000-4000-8000-00000000f00d"
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
    page_size: int = 1000
    page_delay: float = 0.0
    windows: list[tuple[str, str]] = attrs.field(factory=list)
    pages: list[dict[str, str]] = attrs.field(factory=list)
    feedback: list[dict[str, Any]] = attrs.field(factory=list)
    base_url: str = ""


def _parse(value: str) -> int:
    return int(dt.datetime.strptime(value, _FORMAT).replace(tzinfo=dt.UTC).timestamp())


def _vote(payload: bytes) -> dict[str, Any]:
    root = ET.fromstring(payload)
    for element in root.iter():
        element.tag = element.tag.partition("}")[2] or element.tag
    vote = root[0]
    return {"vote": vote.tag, "reasons": [g.text for g in vote.iter("guid")]}


class _Handler(FakeHandler):
    def _xml(self, status: int, body: str) -> None:
        self.answer(status, body.encode(), "application/xml")

    def _authorized(self) -> bool:
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {expected}":
            return True
        self._xml(401, "<error>unauthorized</error>")
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/v2/feedback/") and url.path.endswith("/reasons"):
            self._xml(
                200,
                "<feedbackReasons><availableFeedbackReasons>"
                f"<reason guid='{REASON_GUID}' name='Not CSAM'/>"
                "</availableFeedbackReasons></feedbackReasons>",
            )
            return
        if url.path != "/v2/entries":
            self._xml(404, "<error>not found</error>")
            return
        self._entries(dict(urllib.parse.parse_qsl(url.query)))

    def _entries(self, query: dict[str, str]) -> None:
        fake: FakeNCMEC = self.fake
        fake.pages.append(query)
        if "start" not in query:
            fake.windows.append((query["from"], query["to"]))
        time.sleep(fake.page_delay)
        start, end = _parse(query["from"]), _parse(query["to"])
        chosen = sorted(
            (e for e in fake.entries if start <= e.at <= end), key=lambda e: (e.at, e.id)
        )
        size = int(query.get("size") or fake.page_size)
        shown, following = page(chosen, int(query.get("start") or 0), size)
        newest = max((e.at for e in chosen), default=start)
        stamp = dt.datetime.fromtimestamp(newest, dt.UTC).strftime(_FORMAT)
        next_path = ""
        if following is not None:
            params = {**query, "start": following, "size": size, "max": len(chosen)}
            next_path = escape("/v2/entries?" + urllib.parse.urlencode(params))
        images = "".join(e.xml() for e in shown)
        self._xml(
            200,
            f"<?xml version='1.0'?><queryResult><images maxTimestamp='{stamp}'>{images}"
            f"</images><paging><next>{next_path}</next></paging></queryResult>",
        )

    def do_PUT(self) -> None:
        payload = self.body()
        if not self._authorized():
            return
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if len(parts) != 6 or parts[:2] != ["v2", "entries"] or parts[5] != "feedback":
            self._xml(404, "<error>not found</error>")
            return
        _, _, esp, entry, fingerprint, _ = parts
        self.fake.feedback.append(
            {"member": int(esp), "entry": entry, "fingerprint": fingerprint, **_vote(payload)}
        )
        self._xml(200, "<feedbackSubmissionResult/>")


@contextmanager
def fake_ncmec(fake: FakeNCMEC | None = None) -> Iterator[FakeNCMEC]:
    with serve(fake or FakeNCMEC(), _Handler) as served:
        yield served
