"""A loopback ThreatExchange Graph API: ``/<privacy_group>/threat_updates`` and reactions.

Speaks what python-threatexchange's real client reads: pages of indicator updates ordered by
``last_updated``, each page's ``paging.next`` an absolute URL (carrying the access token, as
Facebook's do), ``should_delete`` on withdrawn indicators, descriptors with owner, status,
tags and reactions. A reaction is ``POST /<descriptor_id>?access_token=...`` with form fields
``reactions`` / ``reactions_to_remove``. Faults on demand: answer 503 (with ``Retry-After``)
a number of times, or hang.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from tests.fakes.loopback import FakeHandler, page, serve

APP_ID = 1234567890
TOKEN = f"{APP_ID}|fakeThreatExchangeTokenSecretValue42"


@attrs.define
class Indicator:
    indicator: str
    type: str = "HASH_PDQ"
    last_updated: int = 1_700_000_000
    should_delete: bool = False
    tags: tuple[str, ...] = ("csam",)
    owner: int = 987654321
    descriptor_id: int = 0
    status: str = "MALICIOUS"
    reactions: dict[str, str] = attrs.field(factory=dict)
    id: int = 0

    def as_json(self) -> dict[str, Any]:
        descriptor = {
            "id": str(self.descriptor_id),
            "owner": {"id": str(self.owner)},
            "status": self.status,
            "tags": list(self.tags),
            "reactions": [{"key": k, "value": v} for k, v in self.reactions.items()],
        }
        return {
            "id": str(self.id),
            "indicator": self.indicator,
            "type": self.type,
            "last_updated": self.last_updated,
            "should_delete": self.should_delete,
            "descriptors": {"data": [descriptor]},
        }


@attrs.define
class FakeThreatExchange:
    """State and behaviour of the fake; change it between fetches."""

    privacy_group: int = 303
    page_size: int = 100
    token: str = TOKEN
    indicators: list[Indicator] = attrs.field(factory=list)
    fail_next: int = 0
    retry_after: str | None = "0"
    hang_seconds: float = 0.0
    page_delay: float = 0.0
    honour_limit: bool = True
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    reactions: list[dict[str, Any]] = attrs.field(factory=list)
    base_url: str = ""
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def add(self, indicator: Indicator) -> Indicator:
        with self._lock:
            indicator.id = indicator.id or len(self.indicators) + 1
            indicator.descriptor_id = indicator.descriptor_id or 10_000 + indicator.id
            self.indicators.append(indicator)
        return indicator

    def withdraw(self, value: str, at: int) -> None:
        for indicator in self.indicators:
            if indicator.indicator == value:
                indicator.should_delete, indicator.last_updated = True, at

    def updates_since(self, start: int | None) -> list[Indicator]:
        chosen = [i for i in self.indicators if start is None or i.last_updated >= start]
        return sorted(chosen, key=lambda i: (i.last_updated, i.id))


class _Handler(FakeHandler):
    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.answer(status, json.dumps(body).encode(), "application/json", headers)

    def _fault(self) -> bool:
        fake = self.server.fake
        if fake.hang_seconds:
            time.sleep(fake.hang_seconds)
        with fake._lock:
            failing = fake.fail_next > 0
            if failing:
                fake.fail_next -= 1
        if failing:
            headers = {"Retry-After": fake.retry_after} if fake.retry_after is not None else {}
            self._answer(503, {"error": {"message": "try later"}}, headers)
        return failing

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        fake.requests.append({"method": "GET", "path": url.path, "query": query})
        if self._fault():
            return
        if query.get("access_token") != fake.token:
            self._answer(400, {"error": {"message": "Invalid OAuth access token."}})
            return
        if url.path.removeprefix("/v1").rstrip("/") != f"/{fake.privacy_group}/threat_updates":
            self._answer(404, {"error": {"message": "unknown path"}})
            return
        time.sleep(fake.page_delay)
        start = int(query["start_time"]) if query.get("start_time") else None
        offset = int(query.get("after", "0"))
        limit = int(query.get("limit") or fake.page_size)
        limit = min(limit, fake.page_size) if fake.honour_limit else fake.page_size
        shown, following = page(fake.updates_since(start), offset, limit)
        body: dict[str, Any] = {"data": [i.as_json() for i in shown]}
        if following is not None:
            body["paging"] = {
                "cursors": {"after": str(following)},
                "next": f"{fake.base_url.removesuffix('/v1')}{url.path}?"
                + urllib.parse.urlencode(dict(query, after=str(following))),
            }
        self._answer(200, body)

    def do_POST(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        form = dict(urllib.parse.parse_qsl(self.body().decode()))
        if self._fault():
            return
        if query.get("access_token") != fake.token:
            self._answer(400, {"error": {"message": "Invalid OAuth access token."}})
            return
        descriptor = url.path.removeprefix("/v1").strip("/")
        fake.reactions.append({"descriptor_id": int(descriptor), **form})
        self._answer(200, {"success": True})


@contextmanager
def fake_threatexchange(fake: FakeThreatExchange | None = None) -> Iterator[FakeThreatExchange]:
    """Serve ``fake`` on a free loopback port; its ``base_url`` is set while it runs."""
    with serve(fake or FakeThreatExchange(), _Handler, "/v1") as served:
        yield served
