"""Every Prometheus series the system exposes, defined once; code records events through here.

Counters and histograms are recorded where things happen (requests, submissions, stages,
delivery attempts). Levels that the records or Redis already know (queue depths, deliveries
by status, failed contents, exchange state, this process's index) are read when
``GET /metrics`` is scraped, so they are never stale and cost nothing between scrapes.

Under ``hma serve`` every process writes its series to ``PROMETHEUS_MULTIPROC_DIR`` (set by
the supervisor, emptied at each start) and a scrape sums them across API processes and
workers. That variable must be set before ``prometheus_client`` is first imported, which is
why the supervisor sets it in the children's environment rather than here.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from hma_framework.runtime import Runtime

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

HTTP_REQUESTS = Counter(
    "hma_http_requests", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "hma_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
SUBMISSIONS = Counter(
    "hma_submissions", "Content submissions by endpoint and outcome", ["path", "outcome"]
)
STAGE_LATENCY = Histogram(
    "hma_stage_latency_seconds",
    "Time from submission until content reached a stage (hashed, matched, actioned)",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
DELIVERY_ATTEMPTS = Counter(
    "hma_delivery_attempts",
    "Action delivery attempts by handler and outcome",
    ["handler", "outcome"],
)
INDEX_SIZE = Gauge(
    "hma_index_entries",
    "Signals in this process's index",
    ["signal_type"],
    multiprocess_mode="all",
)
INDEX_SEQ = Gauge(
    "hma_index_seq",
    "Newest bank change this process's indexes have applied",
    multiprocess_mode="all",
)


def submission_outcome(status: int) -> str:
    """A submission's HTTP status as a low-cardinality outcome label."""
    if status < 300:
        return "accepted"
    named = {
        401: "unauthorized",
        403: "forbidden",
        409: "conflict",
        413: "too_large",
        429: "throttled",
        503: "unavailable",
    }
    return named.get(status, "invalid" if status < 500 else "error")


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


def observe_stage(stage: str, submitted_at: dt.datetime | None) -> None:
    """Record how long content took from submission to ``stage``."""
    if submitted_at is None:
        return
    elapsed = (dt.datetime.now(dt.UTC) - submitted_at).total_seconds()
    STAGE_LATENCY.labels(stage).observe(max(0.0, elapsed))


def observe_delivery_attempt(handler: str, ok: bool, retrying: bool) -> None:
    outcome = "delivered" if ok else ("retrying" if retrying else "failed")
    DELIVERY_ATTEMPTS.labels(handler, outcome).inc()


# --- read at scrape time --------------------------------------------------------------------


class RecordsCollector(Collector):
    """Levels read from Redis and the records when scraped."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from hma_framework.metrics_levels import (
            delivery_levels,
            exchange_levels,
            failed_content_levels,
            queue_levels,
        )

        yield from queue_levels(self._runtime)
        yield from delivery_levels(self._runtime)
        yield from failed_content_levels(self._runtime)
        yield from exchange_levels(self._runtime)


def _record_index_levels(runtime: Runtime) -> None:
    indexes: Any = runtime.__dict__.get("indexes")  # only if this process built them
    if indexes is None:
        return
    for signal_type in runtime.registry.signal_types:
        INDEX_SIZE.labels(signal_type).set(indexes.size(signal_type))
    INDEX_SEQ.set(indexes.seq)


def exposition(runtime: Runtime) -> bytes:
    """The text a scrape gets: every process's series, then the levels read now."""
    _record_index_levels(runtime)
    if os.environ.get(MULTIPROC_ENV):
        recorded = CollectorRegistry()
        MultiProcessCollector(recorded)
    else:
        from prometheus_client import REGISTRY as recorded  # one process: its own series
    levels = CollectorRegistry()
    levels.register(RecordsCollector(runtime))
    return generate_latest(recorded) + generate_latest(levels)
