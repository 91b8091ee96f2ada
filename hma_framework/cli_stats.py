"""``hma stats``: the statistics of ``GET /stats`` as a table, read from the records."""

from __future__ import annotations

import datetime as dt

import click

from hma_framework.settings import Settings

COLUMNS = (
    ("start", "interval start (UTC)"),
    ("submissions", "submitted"),
    ("hashed", "hashed"),
    ("failed", "failed"),
    ("matched_live", "matched"),
    ("matched_retroactive", "retroactive"),
    ("actions_delivered", "actioned"),
)


@click.command()
@click.option("--since", default="1d", show_default=True, help="30d, 12h, or an ISO time.")
@click.option("--until", help="Default: now.")
@click.option("--interval", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@click.option("--by-bank", is_flag=True, help="One line per bank under each interval.")
@click.pass_context
def stats(ctx: click.Context, since: str, until: str | None, interval: str, by_bank: bool) -> None:
    """Submissions, hashing, matches (live and retroactive) and actions per interval."""
    from hma_framework.retroaction.periods import parse_when
    from hma_framework.store.db import Store
    from hma_framework.store.stats_queries import match_stats

    settings: Settings = ctx.obj["settings"]
    try:
        start = parse_when(since)
        end = parse_when(until) if until else dt.datetime.now(dt.UTC)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    store = Store(settings.effective_database_url)
    try:
        rows = match_stats(store, start, end, interval)
    finally:
        store.close()
    table = [[title for _, title in COLUMNS]]
    totals = dict.fromkeys((key for key, _ in COLUMNS[1:]), 0)
    for row in rows:
        table.append(
            [str(row[key])[:19] if key == "start" else str(row[key]) for key, _ in COLUMNS]
        )
        for key in totals:
            totals[key] += int(row[key])
        if by_bank:
            for bank, counts in sorted(row["banks"].items()):
                live, late = str(counts["matched_live"]), str(counts["matched_retroactive"])
                table.append([f"  {bank}", "", "", "", live, late, ""])
    table.append(["total", *(str(totals[key]) for key, _ in COLUMNS[1:])])
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        click.echo(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
