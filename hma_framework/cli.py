"""The ``hma`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import attrs
import click

from hma_framework.data_folder import restrict_umask
from hma_framework.logging_setup import configure_logging
from hma_framework.settings import (
    QUEUE_NAMES,
    Settings,
    SettingsError,
    iter_setting_fields,
    load_section,
    load_settings,
    settings_markdown_table,
)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


def _runtime(ctx: click.Context) -> Any:
    from hma_framework.runtime import RuntimeConfigError, build_runtime

    try:
        return build_runtime(_settings(ctx))
    except RuntimeConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _store(ctx: click.Context) -> Any:
    from hma_framework.store.db import Store

    return Store(_settings(ctx).effective_database_url)


def _missing_sqlite_file(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not os.path.exists(database)
    )


def _ready_store(ctx: click.Context) -> Any:
    """A store whose schema is current, for commands that read or write records.

    On the embedded default (SQLite in the data folder) the command migrates it, as
    ``hma serve`` would: a new user's first command just works. A configured database is
    the operator's to upgrade, so the command stops with what to run instead of a traceback.
    """
    from sqlalchemy.exc import DBAPIError

    from hma_framework.store import migrate

    settings = _settings(ctx)
    if settings.database_url and _missing_sqlite_file(settings.database_url):
        # Connecting would leave an empty database file behind: say what to do instead.
        raise click.ClickException("there is no database yet: run `hma db upgrade` first")
    store = _store(ctx)
    try:
        if not migrate.is_up_to_date(store):
            if settings.database_url:
                raise click.ClickException(
                    "the database schema is not current: run `hma db upgrade` first"
                )
            migrate.upgrade(store)
            click.echo(f"created the database in {settings.data_path}", err=True)
    except DBAPIError as exc:
        store.close()
        url = mask_password(settings.effective_database_url)
        raise click.ClickException(f"cannot use the database at {url}: {exc.orig}") from exc
    except BaseException:
        store.close()
        raise
    return store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="HMA_CONFIG",
    help="TOML settings file (default: $HMA_CONFIG). Environment variables override it.",
)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """hma-framework: hash content, match it against banks, act on matches.

    Settings come from HMA_* environment variables and an optional TOML file;
    `hma settings` shows them all.
    """
    try:
        settings = load_settings(config_file=config_file)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level)
    restrict_umask()  # the data folder is owner-only whichever command writes there first
    ctx.obj = {"settings": settings}


# --- serving ---------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    default="all",
    show_default=True,
    help="all: a complete single-machine instance. api / worker: one kind of fleet node "
    "(needs HMA_REDIS_URL).",
)
@click.option("--host", help="Override HMA_WEB_HOST.")
@click.option("--port", type=int, help="Override HMA_WEB_PORT.")
@click.pass_context
def serve(ctx: click.Context, role: str, host: str | None, port: int | None) -> None:
    """Run the API, workers and scheduler (or one fleet role) until Ctrl-C.

    With no configuration at all this starts a complete instance: SQLite and an embedded
    Redis under ./hma-data, the API on http://127.0.0.1:5000 and a few workers. On first
    start it creates an admin API key and prints it once.
    """
    from hma_framework.serve import serve as run_serve

    settings = _settings(ctx)
    web = attrs.evolve(
        settings.web,
        host=host if host is not None else settings.web.host,
        port=port if port is not None else settings.web.port,
    )
    sys.exit(run_serve(attrs.evolve(settings, web=web), role))


def _parse_queues(value: str | None, default: tuple[str, ...]) -> list[str]:
    roles = [q.strip() for q in value.split(",") if q.strip()] if value else list(default)
    unknown = [q for q in roles if q not in QUEUE_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {unknown}; known: {', '.join(QUEUE_NAMES)}")
    return roles


@cli.command()
@click.option(
    "--queues",
    help=f"Comma-separated queues to serve, in priority order (from: {', '.join(QUEUE_NAMES)}). "
    "Default: HMA_WORKERS_QUEUES, which is all of them.",
)
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--name", help="Worker name shown in RQ's registries.")
@click.pass_context
def worker(ctx: click.Context, queues: str | None, burst: bool, name: str | None) -> None:
    """Run an RQ worker that builds the runtime once and runs jobs in-process."""
    from hma_framework.pipeline.worker import run_worker

    roles = _parse_queues(queues, _settings(ctx).workers.queues)
    runtime = _runtime(ctx)
    try:
        run_worker(runtime, roles, burst=burst, name=name)
    finally:
        runtime.close()


@cli.command()
@click.pass_context
def scheduler(ctx: click.Context) -> None:
    """Run RQ's cron scheduler, which enqueues periodic jobs (run one per deployment)."""
    from hma_framework.pipeline.scheduler import make_scheduler

    runtime = _runtime(ctx)
    try:
        make_scheduler(runtime).start()
    finally:
        runtime.close()


# --- database --------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema: upgrade, current revision."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION (the newest by default)."""
    from hma_framework.store import migrate

    store = _store(ctx)
    try:
        migrate.upgrade(store, revision)
        click.echo(f"database at revision {migrate.current_revision(store)}")
    finally:
        store.close()


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Show the schema revision and whether it is the newest."""
    from hma_framework.store import migrate

    if _missing_sqlite_file(_settings(ctx).effective_database_url):
        head = migrate.head_revision()
        click.echo(f"empty: behind (newest is {head}); no database yet, `hma db upgrade` makes it")
        return
    store = _store(ctx)
    try:
        current = migrate.current_revision(store)
        head = migrate.head_revision()
        state = "up to date" if current == head else f"behind (newest is {head})"
        click.echo(f"{current or 'empty'}: {state}")
    finally:
        store.close()


# --- API keys --------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """API keys: create, list, revoke."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for (shown in listings).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["submit", "read", "admin"]),
    help="Repeat for several scopes. admin includes every scope.",
)
@click.pass_context
def keys_create(ctx: click.Context, name: str, scopes: tuple[str, ...]) -> None:
    """Create a key and print it once: it cannot be shown again."""
    from hma_framework.store.api_keys import ApiKeys

    store = _ready_store(ctx)
    try:
        created = ApiKeys(store).create(name, scopes)
    finally:
        store.close()
    click.echo(f"key id: {created.key.key_id}  scopes: {','.join(created.key.scopes)}", err=True)
    click.echo(created.token)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.pass_context
def keys_list(ctx: click.Context, include_revoked: bool) -> None:
    """List keys (ids, names, scopes; never the secrets)."""
    from hma_framework.store.api_keys import ApiKeys

    store = _ready_store(ctx)
    try:
        for key in ApiKeys(store).list(include_revoked=include_revoked):
            revoked = f"  revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
            click.echo(f"{key.key_id}  {','.join(key.scopes):<18} {key.name}{revoked}")
    finally:
        store.close()


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the key with KEY_ID; it stops working at once."""
    from hma_framework.store.api_keys import ApiKeys

    store = _ready_store(ctx)
    try:
        if not ApiKeys(store).revoke(key_id):
            raise click.ClickException(f"no live key with id {key_id!r}")
    finally:
        store.close()
    click.echo(f"revoked {key_id}")


# --- banks ---------------------------------------------------------------------------------


@cli.group()
def banks() -> None:
    """Banks: import and export members as CSV or NDJSON."""


def _bank_io_context(ctx: click.Context, bank: str, create: bool = False) -> tuple[Any, Any]:
    from hma_framework.registry import make_registry
    from hma_framework.store.bank_queries import BankQueries
    from hma_framework.store.banks import Banks

    store = _ready_store(ctx)
    if BankQueries(store).bank(bank) is None:
        if not create:
            store.close()
            raise click.ClickException(f"no bank named {bank!r} (use --create to make it)")
        Banks(store).create_bank(bank)
    return store, make_registry(_settings(ctx))


@banks.command("import")
@click.argument("bank")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "ndjson"]),
    help="Default: from the file name (.csv, else NDJSON).",
)
@click.option("--strict", is_flag=True, help="Refuse the whole import if any row is invalid.")
@click.option("--create", is_flag=True, help="Create the bank if it does not exist.")
@click.pass_context
def banks_import(
    ctx: click.Context, bank: str, source: str, fmt: str | None, strict: bool, create: bool
) -> None:
    """Add the rows of SOURCE (a file, or - for stdin) to BANK.

    Columns / keys: signal_type, signal_value, tags (';'-separated in CSV), notes, content_id.
    Invalid rows are reported with their line numbers and skipped.
    """
    from hma_framework.bank_io import guess_format, import_members, validate_only

    fmt = fmt or guess_format(source)
    if strict and source == "-":
        raise click.BadParameter("--strict needs a file (it reads the input twice)")
    store, registry = _bank_io_context(ctx, bank, create)
    try:
        if strict:
            with _open_text(source, "r") as checked:
                report = validate_only(registry, checked, fmt)
            if report.invalid:
                _print_rejects(report)
                raise click.ClickException(f"import refused: {report.invalid} invalid row(s)")
        with _open_text(source, "r") as lines:
            size = os.path.getsize(source) if source != "-" else 0
            show = sys.stderr.isatty() and size > 0
            with click.progressbar(
                length=size, label="importing", file=sys.stderr, hidden=not show
            ) as bar:
                report = import_members(store, registry, bank, _counted(lines, bar), fmt)
    finally:
        store.close()
    _print_rejects(report)
    click.echo(f"added {report.added} member(s) to {bank}; skipped {report.invalid} invalid")
    if report.invalid and not report.added:
        sys.exit(1)


def _open_text(path: str, mode: str) -> Any:
    """A text file (newline-preserving, as csv needs), or stdin/stdout for '-'."""
    if path == "-":
        stream = sys.stdin if mode == "r" else sys.stdout
        return contextlib.nullcontext(stream)
    return open(path, mode, newline="", encoding="utf-8")


def _counted(lines: Any, bar: Any) -> Any:
    for line in lines:
        bar.update(len(line))
        yield line


def _print_rejects(report: Any) -> None:
    for line, message in report.errors:
        click.echo(f"line {line}: {message}", err=True)
    if report.invalid > len(report.errors):
        click.echo(f"... and {report.invalid - len(report.errors)} more", err=True)


@banks.command("export")
@click.argument("bank")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "ndjson"]), default="ndjson", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="File to write (default: stdout).",
)
@click.pass_context
def banks_export(ctx: click.Context, bank: str, fmt: str, output: str) -> None:
    """Write BANK's members in the import format (a round trip reproduces the bank)."""
    from hma_framework.bank_io import export_lines

    store, _registry = _bank_io_context(ctx, bank)
    try:
        with _open_text(output, "w") as target:
            for line in export_lines(store, bank, fmt):
                target.write(line)
    finally:
        store.close()


# --- plugins and settings --------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the full listing as JSON.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins and what each provides."""
    from hma_framework.registry import make_registry

    listing = make_registry(_settings(ctx)).as_json()
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    for plugin in listing["plugins"]:
        origin = f"{plugin['distribution']} {plugin['version']}".strip()
        click.echo(f"{plugin['name']}  ({plugin['module']}; {origin or 'registered directly'})")
        for hook, names in plugin["provides"].items():
            click.echo(f"    {hook}: {', '.join(names)}")
    for failed in listing["failed"]:
        click.echo(f"{failed['name']}  FAILED TO LOAD: {failed['error']}")


@cli.command("settings")
@click.option("--markdown", is_flag=True, help="Print the documentation table instead.")
@click.pass_context
def settings_command(ctx: click.Context, markdown: bool) -> None:
    """Show every setting's effective value (URLs with passwords are masked)."""
    from hma_framework.registry import make_registry

    sections = make_registry(_settings(ctx)).settings_sections()
    if markdown:
        click.echo(settings_markdown_table())
        for section in sections:
            click.echo(f"\n`[{section.name}]` (plugin settings):\n")
            click.echo(settings_markdown_table(section.cls, (section.name,)))
        return
    settings = _settings(ctx)
    for field in iter_setting_fields():
        value: Any = settings
        for part in field.path:
            value = getattr(value, part)
        if isinstance(value, tuple):
            value = ",".join(str(part) for part in value)
        if field.path[-1] == "secret_key" and value:
            value = "***"
        elif field.path[-1].endswith("url"):
            value = mask_password(str(value))
        click.echo(f"{field.env_var}={value}")
    for section in sections:
        loaded = load_section(settings, section.name, section.cls)
        for field in iter_setting_fields(section.cls, (section.name,)):
            value = getattr(loaded, field.path[-1])
            click.echo(f"{field.env_var}={','.join(value) if isinstance(value, tuple) else value}")


def mask_password(url: str) -> str:
    """``scheme://user:secret@host`` becomes ``scheme://user:***@host``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{host}"


def main() -> None:
    cli(prog_name="hma")
