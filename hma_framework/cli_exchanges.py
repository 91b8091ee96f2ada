"""``hma exchanges``: the exchange service from the command line (list, add, fetch, status, remove).

Credentials are read from a JSON file (or ``-`` for standard input), never from an argument
that the process list would show, and never printed.
"""

from __future__ import annotations

import json
from typing import Any

import click


def _runtime(ctx: click.Context) -> Any:
    from hma_framework.runtime import RuntimeConfigError, build_runtime

    try:
        return build_runtime(ctx.obj["settings"])
    except RuntimeConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc.msg}", param_hint=what) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return value


def _service_errors() -> tuple[type[Exception], ...]:
    from hma_framework.exchanges.configs import (
        ExchangeConflictError,
        ExchangeInputError,
        ExchangeNotFoundError,
    )

    return (ExchangeConflictError, ExchangeInputError, ExchangeNotFoundError)


@click.group()
def exchanges() -> None:
    """Exchanges that fill banks on a schedule (ThreatExchange, NCMEC, local files...)."""


@exchanges.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def exchanges_list(ctx: click.Context, as_json: bool) -> None:
    """List configured exchanges (never their credentials)."""
    from hma_framework.exchanges.configs import exchanges_of

    configured = exchanges_of(_runtime(ctx)).all()
    if as_json:
        click.echo(json.dumps(configured, indent=2))
        return
    for exchange in configured:
        state = "enabled" if exchange["enabled"] else "disabled"
        click.echo(f"{exchange['name']}\t{exchange['api']}\tbank {exchange['bank']}\t{state}")


@exchanges.command("add")
@click.argument("name")
@click.option("--api", required=True, help="Exchange API, e.g. fb_threatexchange.")
@click.option("--config", "config", default="{}", help="Collaboration config as JSON.")
@click.option(
    "--credentials-file",
    type=click.File("r"),
    help="JSON file with the credentials ('-' reads standard input).",
)
@click.option("--bank", help="Bank to create and fill (default: NAME upper-cased).")
@click.option("--interval", "interval", default=900, show_default=True, help="Fetch every N s.")
@click.option("--disabled", is_flag=True, help="Create it without fetching on schedule.")
@click.pass_context
def exchanges_add(
    ctx: click.Context,
    name: str,
    api: str,
    config: str,
    credentials_file: Any,
    bank: str | None,
    interval: int,
    disabled: bool,
) -> None:
    """Configure an exchange and create the bank it fills."""
    from hma_framework.exchanges.configs import exchanges_of

    credentials = (
        _json_object(credentials_file.read(), "--credentials-file") if credentials_file else {}
    )
    try:
        created = exchanges_of(_runtime(ctx)).create(
            name=name,
            api=api,
            config=_json_object(config, "--config"),
            credentials=credentials,
            bank=bank,
            enabled=not disabled,
            fetch_interval_seconds=interval,
        )
    except _service_errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exchange {created['name']} ({created['api']}) fills bank {created['bank']}")


@exchanges.command("fetch")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Fetch in this process instead of enqueueing.")
@click.pass_context
def exchanges_fetch(ctx: click.Context, name: str, wait: bool) -> None:
    """Fetch an exchange now (on the fetch queue, or here with --wait)."""
    from hma_framework.exchanges import fetching
    from hma_framework.pipeline.context import set_current_runtime

    runtime = _runtime(ctx)
    try:
        if not wait:
            enqueued = fetching.trigger_by_name(runtime, name)
            click.echo("fetch enqueued" if enqueued else "a fetch is already queued or running")
            return
        exchange_pk = fetching.exchange_pk(runtime, name)
    except _service_errors() as exc:
        raise click.ClickException(str(exc)) from None
    set_current_runtime(runtime)
    try:
        click.echo(fetching.fetch_exchange(exchange_pk))
    finally:
        set_current_runtime(None)


@exchanges.command("status")
@click.argument("name")
@click.pass_context
def exchanges_status(ctx: click.Context, name: str) -> None:
    """Show an exchange's fetch state, counters and last error."""
    from hma_framework.exchanges import fetching

    try:
        click.echo(json.dumps(fetching.status(_runtime(ctx), name), indent=2))
    except _service_errors() as exc:
        raise click.ClickException(str(exc)) from None


@exchanges.command("remove")
@click.argument("name")
@click.option("--delete-bank", is_flag=True, help="Delete the bank it filled as well.")
@click.pass_context
def exchanges_remove(ctx: click.Context, name: str, delete_bank: bool) -> None:
    """Remove an exchange (its bank is kept unless --delete-bank)."""
    from hma_framework.exchanges.configs import exchanges_of

    try:
        exchanges_of(_runtime(ctx)).delete(name, delete_bank=delete_bank)
    except _service_errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exchange {name} removed")
