"""Levels read when ``/metrics`` is scraped: queues from Redis, the rest from the records.

Each query is a grouped count over an indexed status column, so a scrape stays cheap however
many rows there are. Failed contents are grouped by the part of their error before the first
colon ("hashing failed", "fetching failed after retries"...), which keeps the label set small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from hma_framework.actions import deliveries
from hma_framework.store import content as content_records
from hma_framework.store.tables import ContentRow, DeliveryRow, ExchangeRow, HandlerConfigRow

if TYPE_CHECKING:
    from hma_framework.runtime import Runtime

#: Distinct failure reasons reported; the rest are summed under "other".
MAX_FAILURE_REASONS = 20


def queue_levels(runtime: Runtime) -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily("hma_queue_depth", "Jobs waiting in a queue", labels=["queue"])
    oldest = GaugeMetricFamily(
        "hma_queue_oldest_job_age_seconds",
        "Age of the oldest job waiting in a queue (0 when empty)",
        labels=["queue"],
    )
    scheduled = GaugeMetricFamily(
        "hma_queue_scheduled", "Jobs scheduled for later (retries)", labels=["queue"]
    )
    now = dt.datetime.now(dt.UTC)
    for role in runtime.settings.workers.queues:
        queue = runtime.queues[role]
        depth.add_metric([role], queue.count)
        scheduled.add_metric([role], queue.scheduled_job_registry.count)
        age = 0.0
        first = queue.get_job_ids(0, 1)
        if first:
            job = queue.fetch_job(first[0])
            enqueued = job.enqueued_at if job is not None else None
            if enqueued is not None:
                if enqueued.tzinfo is None:
                    enqueued = enqueued.replace(tzinfo=dt.UTC)
                age = max(0.0, (now - enqueued).total_seconds())
        oldest.add_metric([role], age)
    yield from (depth, oldest, scheduled)


def delivery_levels(runtime: Runtime) -> Iterator[GaugeMetricFamily]:
    by_status = GaugeMetricFamily(
        "hma_deliveries", "Deliveries by handler and status", labels=["handler", "status"]
    )
    backlog = GaugeMetricFamily(
        "hma_delivery_retry_backlog", "Deliveries waiting for a retry", labels=["handler"]
    )
    query = (
        select(HandlerConfigRow.name, DeliveryRow.status, func.count())
        .select_from(DeliveryRow)
        .join(HandlerConfigRow, HandlerConfigRow.id == DeliveryRow.handler_pk)
        .group_by(HandlerConfigRow.name, DeliveryRow.status)
    )
    retrying = (
        select(HandlerConfigRow.name, func.count())
        .select_from(DeliveryRow)
        .join(HandlerConfigRow, HandlerConfigRow.id == DeliveryRow.handler_pk)
        .where(DeliveryRow.status == deliveries.PENDING, DeliveryRow.round_attempts > 0)
        .group_by(HandlerConfigRow.name)
    )
    with runtime.store.reading() as session:
        for handler, status, count in session.execute(query):
            by_status.add_metric([handler, status], count)
        for handler, count in session.execute(retrying):
            backlog.add_metric([handler], count)
    yield from (by_status, backlog)


def failed_content_levels(runtime: Runtime) -> Iterator[GaugeMetricFamily]:
    failed = GaugeMetricFamily(
        "hma_failed_contents", "Content that ended failed, by reason", labels=["reason"]
    )
    by_status = GaugeMetricFamily("hma_contents", "Content by status", labels=["status"])
    with runtime.store.reading() as session:
        for status, count in session.execute(
            select(ContentRow.status, func.count()).group_by(ContentRow.status)
        ):
            by_status.add_metric([status], count)
        errors = session.execute(
            select(ContentRow.error, func.count())
            .where(ContentRow.status == content_records.FAILED)
            .group_by(ContentRow.error)
        ).all()
    reasons: dict[str, int] = {}
    for error, count in errors:
        reason = (error or "unknown").split(":", 1)[0].strip()[:80] or "unknown"
        reasons[reason] = reasons.get(reason, 0) + count
    ranked = sorted(reasons.items(), key=lambda item: -item[1])
    for reason, count in ranked[:MAX_FAILURE_REASONS]:
        failed.add_metric([reason], count)
    rest = sum(count for _, count in ranked[MAX_FAILURE_REASONS:])
    if rest:
        failed.add_metric(["other"], rest)
    yield from (by_status, failed)


def exchange_levels(runtime: Runtime) -> Iterator[GaugeMetricFamily]:
    state = GaugeMetricFamily(
        "hma_exchange_last_fetch_ok",
        "1 when an exchange's last fetch succeeded, 0 when it failed",
        labels=["exchange", "api"],
    )
    age = GaugeMetricFamily(
        "hma_exchange_last_fetch_age_seconds",
        "Time since an exchange's last fetch ended",
        labels=["exchange", "api"],
    )
    now = dt.datetime.now(dt.UTC)
    with runtime.store.reading() as session:
        rows = session.execute(
            select(
                ExchangeRow.name,
                ExchangeRow.api_type,
                ExchangeRow.last_fetch_status,
                ExchangeRow.last_fetch_at,
            )
        ).all()
    for name, api, status, fetched_at in rows:
        if status is not None:
            state.add_metric([name, api], 1 if status in ("ok", "succeeded") else 0)
        if fetched_at is not None:
            age.add_metric([name, api], max(0.0, (now - fetched_at).total_seconds()))
    yield from (state, age)
