"""``hma retroact``: start a full rescan and follow it with a progress bar."""

from __future__ import annotations

import sys
import time

import click

from hma_framework.settings import Settings


@click.command()
@click.option("--since", required=True, help="Start of the period: 30d, 12h, or an ISO time.")
@click.option("--until", help="End of the period (default: now).")
@click.option("--bank", "banks", multiple=True, help="Only this bank (repeatable; default: all).")
@click.option("--wait/--no-wait", default=True, help="Follow the rescan until it ends.")
@click.option("--poll-seconds", default=1.0, show_default=True, hidden=True)
@click.pass_context
def retroact(
    ctx: click.Context,
    since: str,
    until: str | None,
    banks: tuple[str, ...],
    wait: bool,
    poll_seconds: float,
) -> None:
    """Match stored content signals of a period against banks again (a full rescan).

    The rescan runs on a worker serving the `retroact` queue; this command starts it and
    shows its progress. Interrupting the command does not stop the rescan.
    """
    import datetime as dt

    from hma_framework.retroaction import rescans
    from hma_framework.retroaction.periods import parse_when
    from hma_framework.runtime import RuntimeConfigError, build_runtime
    from hma_framework.store.banks import BankNotFoundError

    settings: Settings = ctx.obj["settings"]
    try:
        start, end = parse_when(since), parse_when(until) if until else dt.datetime.now(dt.UTC)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        runtime = build_runtime(settings)
    except RuntimeConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        scan_pk = rescans.start_rescan(runtime, start, end, banks)
    except (BankNotFoundError, rescans.RescanConflict) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        state = rescans.describe(runtime, scan_pk) or {}
        click.echo(f"rescan {scan_pk} started: {state.get('total', 0)} content signals")
        if not wait:
            return
        with click.progressbar(
            length=max(1, int(state.get("total", 0))), label="rescanning", file=sys.stderr
        ) as bar:
            shown = 0
            while state.get("state") not in (rescans.DONE, rescans.FAILED):
                time.sleep(poll_seconds)
                state = rescans.describe(runtime, scan_pk) or {}
                bar.update(int(state.get("scanned", 0)) - shown)
                shown = int(state.get("scanned", 0))
        click.echo(
            f"rescan {scan_pk} {state['state']}: scanned {state['scanned']}, "
            f"content newly matched {state['matched']}"
        )
        if state["state"] == rescans.FAILED:
            raise click.ClickException(f"rescan failed: {state.get('error')}")
    finally:
        runtime.close()
