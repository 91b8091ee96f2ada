"""Figures for the console's Overview, read from counters the database keeps (not metrics).

Submissions, matches and actions per hour come from ``hourly_tally``, which triggers keep in
the writing transaction (migration 0014), so the page reads at most 30 x 24 rows per series
whatever the size of the content and match tables; ``count(*)`` over a 30-day range of a
million rows was the slowest part of the page. Lists are short, newest first, and each is one
bounded index walk.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from sqlalchemy import func, select

from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankRow,
    ContentRow,
    DeliveryRow,
    HourlyTallyRow,
    IndexSnapshotRow,
    utcnow,
)

WINDOWS = {"day": dt.timedelta(days=1), "30 days": dt.timedelta(days=30)}
FAILED = "failed"
#: Series in ``hourly_tally`` and what the Overview calls them.
SERIES = {
    "submissions": ("submissions",),
    "matches": ("matches", "retro_matches"),
    "live matches": ("matches",),
    "retroactive matches": ("retro_matches",),
    "actions": ("actions",),
}
MATCH_SERIES = ("matches", "retro_matches")


def hour_key(moment: dt.datetime) -> str:
    """The tally's bucket for ``moment``: its UTC hour as 'YYYY-MM-DD HH' (as the triggers)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H")


@attrs.frozen
class Bar:
    """One bar of a chart: its label (an hour or a day) and its count."""

    label: str
    count: int


@attrs.frozen
class Chart:
    """One series over a window, oldest bar first, for a server-rendered bar chart."""

    name: str
    window: str
    bars: list[Bar]

    @property
    def total(self) -> int:
        return sum(bar.count for bar in self.bars)

    @property
    def peak(self) -> int:
        return max((bar.count for bar in self.bars), default=0)


class OverviewQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _hourly(self, now: dt.datetime) -> dict[tuple[str, str], int]:
        """``{(series, hour): n}`` over the last 30 days, summed over banks."""
        since = hour_key(now - WINDOWS["30 days"] + dt.timedelta(hours=1))
        query = (
            select(HourlyTallyRow.series, HourlyTallyRow.hour, func.sum(HourlyTallyRow.n))
            .where(HourlyTallyRow.hour >= since)
            .group_by(HourlyTallyRow.series, HourlyTallyRow.hour)
        )
        with self._store.reading() as session:
            return {(series, hour): int(n) for series, hour, n in session.execute(query)}

    def charts(self, now: dt.datetime | None = None) -> list[Chart]:
        """Each series by hour over the last 24 hours and by day over the last 30 days."""
        now = (now or utcnow()).astimezone(dt.UTC)
        hourly = self._hourly(now)
        hours = [hour_key(now - dt.timedelta(hours=h)) for h in range(23, -1, -1)]
        days = [(now - dt.timedelta(days=d)).strftime("%Y-%m-%d") for d in range(29, -1, -1)]
        per_day: dict[tuple[str, str], int] = {}
        for (kind, hour), n in hourly.items():
            per_day[(kind, hour[:10])] = per_day.get((kind, hour[:10]), 0) + n
        charts = []
        for name, series in SERIES.items():
            charts.append(
                Chart(
                    name,
                    "day",
                    [
                        Bar(h[11:] + ":00", sum(hourly.get((s, h), 0) for s in series))
                        for h in hours
                    ],
                )
            )
            charts.append(
                Chart(
                    name,
                    "30 days",
                    [Bar(d[5:], sum(per_day.get((s, d), 0) for s in series)) for d in days],
                )
            )
        return charts

    def counts(self, now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
        """``{"submissions": {"day": n, "30 days": m}, "matches": ..., ...}``.

        "day" is the last 24 whole hours including the current one, "30 days" the last 720.
        """
        counts: dict[str, dict[str, int]] = {}
        for chart in self.charts(now):
            counts.setdefault(chart.name, {})[chart.window] = chart.total
        return counts

    def matches_per_bank(
        self, now: dt.datetime | None = None, submitted: dict[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """Per bank, matches over each window and per 100 submissions, busiest first.

        ``submitted`` is the submissions per window when the caller has them already.
        """
        now = now or utcnow()
        starts = {w: hour_key(now - span + dt.timedelta(hours=1)) for w, span in WINDOWS.items()}
        in_day = HourlyTallyRow.hour >= starts["day"]
        with self._store.reading() as session:
            rows = session.execute(
                select(
                    BankRow.name,
                    func.sum(HourlyTallyRow.n),
                    func.sum(HourlyTallyRow.n).filter(in_day),
                )
                .join(BankRow, BankRow.id == HourlyTallyRow.bank_pk)
                .where(
                    HourlyTallyRow.hour >= starts["30 days"],
                    HourlyTallyRow.series.in_(MATCH_SERIES),
                )
                .group_by(BankRow.name)
            ).all()
        if submitted is None:
            submitted = self.counts(now)["submissions"]
        per_bank = []
        for name, month, day in rows:
            if not month:
                continue  # every match of the window was since removed
            counts = {"day": int(day or 0), "30 days": int(month)}
            rates = {
                w: round(100.0 * counts[w] / submitted[w], 2) if submitted[w] else None
                for w in WINDOWS
            }
            per_bank.append({"bank": name, **counts, "rate": rates})
        return sorted(per_bank, key=lambda row: (-row["30 days"], row["bank"]))

    def failed_contents(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.execute(
                select(ContentRow.content_id, ContentRow.error, ContentRow.updated_at)
                .where(ContentRow.status == FAILED)
                .order_by(ContentRow.id.desc())
                .limit(limit)
            ).all()
        return [{"content_id": c, "error": e, "updated_at": u} for c, e, u in rows]

    def failing_deliveries(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.execute(
                select(DeliveryRow.id, DeliveryRow.action_key, DeliveryRow.attempts)
                .where(DeliveryRow.status == FAILED)
                .order_by(DeliveryRow.id.desc())
                .limit(limit)
            ).all()
        return [{"id": i, "action": a, "attempts": n} for i, a, n in rows]

    def shared_snapshots(self) -> list[dict[str, Any]]:
        """The index snapshots other hosts load from: per signal type, its change-log seq."""
        with self._store.reading() as session:
            rows = session.execute(
                select(
                    IndexSnapshotRow.signal_type,
                    IndexSnapshotRow.seq,
                    IndexSnapshotRow.entries,
                    IndexSnapshotRow.written_at,
                ).order_by(IndexSnapshotRow.signal_type)
            ).all()
        return [
            {"signal_type": t, "seq": seq, "entries": n, "written_at": at} for t, seq, n, at in rows
        ]
