"""A loopback StopNCII API: ``/FetchHashes`` pages and ``/SubmitFeedback``.

``FetchHashes`` answers pages of hash records newer than ``startTimestamp``, continued by an
opaque ``nextPageToken`` while ``hasMoreRecords``; each record carries its aggregate
``hashStatus`` (``Active``, ``Withdrawn``...). Both keys are checked on every request
(``x-functions-key`` per endpoint, ``Ocp-Apim-Subscription-Key``). Feedback posts are kept.
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

FETCH_KEY = "fetch-function-key-secret-1"
FEEDBACK_KEY = "feedback-function-key-secret-2"
SUBSCRIPTION_KEY = "subscription-key-secret-3"


def exchange_credentials(feedback: bool = True) -> dict[str, str]:
    """The keys an exchange on this fake is configured with (SubmitFeedback's if asked)."""
    keys = {"fetch_function_key": FETCH_KEY, "subscription_key": SUBSCRIPTION_KEY}
    return {**keys, "feedback_function_key": FEEDBACK_KEY} if feedback else keys


@attrs.define
class FakeStopNCII:
    page_size: int = 2
    page_delay: float = 0.0
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


class _Handler(FakeHandler):
    def _answer(self, status: int, body: Any) -> None:
        self.answer(status, json.dumps(body).encode(), "application/json")

    def _authorized(self, function_key: str) -> bool:
        ok = (
            self.headers.get("x-functions-key") == function_key
            and self.headers.get("Ocp-Apim-Subscription-Key") == SUBSCRIPTION_KEY
        )
        if not ok:
            self._answer(401, {"message": "Access denied due to invalid subscription key."})
        return ok

    def do_GET(self) -> None:
        fake: FakeStopNCII = self.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        fake.requests.append({"path": url.path, "query": query})
        if url.path != "/v1/FetchHashes":
            self._answer(404, {"message": "not found"})
            return
        if not self._authorized(FETCH_KEY):
            return
        time.sleep(fake.page_delay)
        start = int(query.get("startTimestamp", "0"))
        newer = sorted(
            (r for r in fake.records if r["lastModtimestamp"] >= start),
            key=lambda r: r["lastModtimestamp"],
        )
        shown, following = page(newer, int(query.get("nextPageToken") or 0), fake.page_size)
        self._answer(
            200,
            {
                "count": len(shown),
                "nextPageToken": None if following is None else str(following),
                "nextSetTimestamp": max((r["lastModtimestamp"] for r in newer), default=start),
                "hasMoreRecords": following is not None,
                "hashRecords": list(shown),
            },
        )

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = json.loads(self.body())
        if url.path != "/v1/SubmitFeedback":
            self._answer(404, {"message": "not found"})
            return
        if self._authorized(FEEDBACK_KEY):
            self.fake.feedback.append(body)
            self._answer(200, {})


@contextmanager
def fake_stopncii(fake: FakeStopNCII | None = None) -> Iterator[FakeStopNCII]:
    with serve(fake or FakeStopNCII(), _Handler, "/v1") as served:
        yield served
