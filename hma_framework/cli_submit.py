"""``hma submit``: send a dataset (or a sample of it) to a running instance, then summarize."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--url", envvar="HMA_API_URL", required=True, help="Base URL (env HMA_API_URL).")
@click.option(
    "--key",
    envvar="HMA_API_KEY",
    required=True,
    help="API key with scope submit (env HMA_API_KEY).",
)
@click.option("--hash-locally", is_flag=True, help="Hash local files here and send only hashes.")
@click.option("--processes", type=click.IntRange(1), help="Hashing processes (default: CPUs).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=500, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--sample",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    help="Send this share of items, chosen at random (e.g. 0.1).",
)
@click.option("--seed", type=int, help="Random seed for --sample, to repeat a sample.")
@click.option("--retries", type=click.IntRange(0, 20), default=5, show_default=True)
def submit(
    source: Path,
    url: str,
    key: str,
    hash_locally: bool,
    processes: int | None,
    batch_size: int,
    concurrency: int,
    sample: float,
    seed: int | None,
    retries: int,
) -> None:
    """Submit SOURCE: a CSV or NDJSON file of items, or a folder of media files.

    Columns / keys: content_id, then signal_type + signal_value (sent in batches), or url,
    or path (a local file); content_type (photo, video; default from the file name, else
    photo) and additional_fields (';'-separated in CSV) are optional. A folder is walked for
    photos and videos, each named by its path under the folder.
    """
    from hma_framework import submit_tool

    items = submit_tool.sampled(submit_tool.read_items(source), sample, seed)
    sender = submit_tool.Sender(url, key, retries=retries)
    show = sys.stderr.isatty()
    with click.progressbar(
        length=0, label="submitting", file=sys.stderr, hidden=not show, show_pos=True
    ) as bar:
        summary = submit_tool.run(
            items,
            sender,
            batch_size=batch_size,
            concurrency=concurrency,
            hash_locally=hash_locally,
            hash_processes=processes,
            progress=bar.update,
        )
    for error in summary.errors:
        click.echo(f"failed: {error}", err=True)
    click.echo(
        f"sent {summary.sent}, accepted {summary.accepted}, matched {summary.matched}, "
        f"failed {summary.failed}"
    )
    if summary.sent and summary.accepted == 0:
        sys.exit(1)
