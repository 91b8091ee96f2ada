"""Overview: activity charts, match rate per bank, queue depths, index freshness, failures.

Every figure comes from a bounded read: the hourly counters (``OverviewQueries``), each
queue's length, this process's index position against the change log, and the ten newest
failures. Charts are SVG drawn here on the server (no script, nothing from a CDN).
"""

from __future__ import annotations

from typing import Any

import attrs
from werkzeug.wrappers import Response

from hma_framework.index.warmup import index_state
from hma_framework.store.banks import Banks
from hma_framework.store.overview_queries import Chart, OverviewQueries
from hma_framework.web.api_schema import html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, page, runtime

#: The SVG's drawing box; it scales to its container.
CHART_WIDTH = 300
CHART_HEIGHT = 80


@attrs.frozen
class Rect:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


def chart_rects(chart: Chart) -> list[Rect]:
    """Bars scaled to the chart's peak; an empty bar keeps a 1-unit stub so the axis shows."""
    slot = CHART_WIDTH / max(1, len(chart.bars))
    peak = max(1, chart.peak)
    rects = []
    for n, bar in enumerate(chart.bars):
        height = max(1.0, (CHART_HEIGHT - 2) * bar.count / peak)
        rects.append(
            Rect(
                x=round(n * slot + slot * 0.1, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(slot * 0.8, 2),
                height=round(height, 2),
                label=bar.label,
                count=bar.count,
            )
        )
    return rects


def _index_freshness() -> dict[str, Any]:
    rt = runtime()
    state = index_state(rt)
    state["snapshots"] = OverviewQueries(rt.store).shared_snapshots()
    latest = state.get("latest_seq")
    if latest is None:  # this process has not loaded its indexes (it is not a matcher)
        latest = Banks(rt.store).latest_seq()
    for snapshot in state["snapshots"]:
        snapshot["lag"] = max(0, latest - snapshot["seq"])
    state["latest_seq"] = latest
    return state


@blueprint.get("/")
@console_scope("read")
@operation("Console: overview", responses=html_page(400, 404))
def overview() -> Response:
    rt = runtime()
    queries = OverviewQueries(rt.store)
    charts = queries.charts()
    counts: dict[str, dict[str, int]] = {}
    for chart in charts:
        counts.setdefault(chart.name, {})[chart.window] = chart.total
    return page(
        "overview.html",
        counts=counts,
        charts=[(chart, chart_rects(chart)) for chart in charts],
        chart_box=(CHART_WIDTH, CHART_HEIGHT),
        per_bank=queries.matches_per_bank(submitted=counts["submissions"]),
        depths={queue.name: queue.count for queue in rt.queues.all()},
        index=_index_freshness(),
        failed_contents=queries.failed_contents(),
        failing_deliveries=queries.failing_deliveries(),
    )
