"""A loopback Tech Against Terrorism hash list API, as python-threatexchange's client reads it.

``POST /token-auth/tcap/`` (form ``username``/``password``) answers a JWT-like token;
``GET /api/hash-list/v2/all`` with ``Authorization: Bearer <token>`` answers a page of
entries (``hash_digest``, ``algorithm``, ``ideology``, ``file_type``, ``deleted``,
``updated_on``, ``created_on``, ``id``) in ascending ``(updated_on, id)`` order after the
``after`` checkpoint (``"<updated_on>,<id>"``), with ``next`` the query string of the
following page (``limit``/``offset``) and ``checkpoint`` naming the page's last entry.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from tests.fakes.loopback import FakeHandler, page, serve

USER, PASSWORD = "tat-user", "tat-password-secret"
TOKEN = "tat-session-token-secret"


@attrs.define
class FakeTAT:
    page_size: int = 2
    page_delay: float = 0.0
    entries: list[dict[str, Any]] = attrs.field(factory=list)
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    base_url: str = ""

    def add(
        self,
        digest: str,
        at: float,
        algorithm: str = "PDQ",
        file_type: str = "jpg",
        deleted: bool = False,
    ) -> None:
        self.entries = [e for e in self.entries if e["hash_digest"] != digest]
        self.entries.append(
            {
                "hash_digest": digest,
                "algorithm": algorithm,
                "ideology": "far-right",
                "file_type": file_type,
                "deleted": deleted,
                "updated_on": at,
                "created_on": "2024-01-01T00:00:00Z",
                "id": len(self.entries) + 1 + int(at),
            }
        )


def _position(entry: dict[str, Any]) -> tuple[float, int]:
    return (float(entry["updated_on"]), int(entry["id"]))


class _Handler(FakeHandler):
    def _json(self, status: int, body: Any) -> None:
        self.answer(status, json.dumps(body).encode(), "application/json")

    def do_POST(self) -> None:
        form = dict(urllib.parse.parse_qsl(self.body().decode()))
        if self.path != "/token-auth/tcap/":
            self._json(404, {"detail": "not found"})
        elif form.get("username") == USER and form.get("password") == PASSWORD:
            self._json(200, {"token": TOKEN, "user": {"username": USER}})
        else:
            self._json(400, {"non_field_errors": ["Unable to log in."]})

    def do_GET(self) -> None:
        fake: FakeTAT = self.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        fake.requests.append({"path": url.path, "query": query})
        if url.path != "/api/hash-list/v2/all":
            self._json(404, {"detail": "not found"})
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, {"detail": "Invalid token."})
            return
        time.sleep(fake.page_delay)
        after = query.get("after") or ""
        entries = sorted(fake.entries, key=_position)
        if after:
            stamp, _, last_id = after.partition(",")
            entries = [e for e in entries if _position(e) > (float(stamp), int(last_id))]
        limit = int(query.get("limit") or fake.page_size)
        shown, following = page(entries, int(query.get("offset") or 0), limit)
        last = shown[-1] if shown else None
        self._json(
            200,
            {
                "count": len(entries),
                "next": None
                if following is None
                else urllib.parse.urlencode({"limit": limit, "offset": following}),
                "previous": None,
                "checkpoint": f"{last['updated_on']},{last['id']}" if last else after,
                "results": list(shown),
            },
        )


@contextmanager
def fake_tat(fake: FakeTAT | None = None) -> Iterator[FakeTAT]:
    with serve(fake or FakeTAT(), _Handler) as served:
        yield served
