"""The ``hma`` command line."""

from __future__ import annotations

import contextlib
import io
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
    except (RuntimeConfigError, SettingsError) as exc:  # SettingsError: a plugin's section
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


class _HmaGroup(click.Group):
    """The core commands, plus ``hma <source> listen`` for content sources with a listener.

    A plugin's content source may bring a long-running listener (a queue poller); its command
    is found by name only when asked for, so no plugin is loaded to run a core command.
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        from hma_framework.registry import make_registry

        record = make_registry().content_sources.get(cmd_name)
        if record is None or record.listener is None:
            return None
        return _listener_group(cmd_name)


def _listener_group(source_name: str) -> click.Group:
    group = click.Group(source_name, help=f"Commands of the {source_name} content source.")

    @group.command("listen")
    @click.pass_context
    def listen(ctx: click.Context) -> None:
        """Run the source's listener (for example a queue poller) until SIGTERM or Ctrl-C."""
        runtime = _runtime(ctx)
        try:
            record = runtime.registry.content_sources.get(source_name)
            if record is None or record.listener is None:
                raise click.ClickException(f"content source {source_name!r} is not loaded")
            record.listener(runtime)
        finally:
            runtime.close()

    return group


@click.group(cls=_HmaGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    configure_logging(settings.log_level, settings.log_format)
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


@cli.command("serve-prepare", hidden=True)
@click.option("--role", type=click.Choice(["all", "api", "worker"]), default="all")
@click.pass_context
def serve_prepare(ctx: click.Context, role: str) -> None:
    """For `hma serve`: migrate, make the first admin key, list listeners; print JSON."""
    from hma_framework.serve_prepare import prepare

    click.echo(prepare(_settings(ctx), role).to_json())


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
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Workers to fork from this process, which imports everything once so they share "
    "that memory; it re-forks any that exit. Not with --burst or --name.",
)
@click.pass_context
def worker(
    ctx: click.Context, queues: str | None, burst: bool, name: str | None, processes: int
) -> None:
    """Run an RQ worker that builds the runtime once and runs jobs in-process."""
    from hma_framework.pipeline.worker import run_worker

    roles = _parse_queues(queues, _settings(ctx).workers.queues)
    if processes > 1:
        if burst or name:
            raise click.UsageError("--processes above 1 runs long-lived workers: no --burst/--name")
        from hma_framework.pipeline.worker_pool import WorkerPool

        sys.exit(WorkerPool(_settings(ctx), roles, processes).run())
    runtime = _runtime(ctx)
    try:
        run_worker(runtime, roles, burst=burst, name=name)
    finally:
        runtime.close()


@cli.command()
@click.pass_context
def scheduler(ctx: click.Context) -> None:
    """Run RQ's cron scheduler, which enqueues periodic jobs (run one per deployment)."""
    # Only Redis: the periodic jobs are named, not imported, so this process stays small.
    from hma_framework.pipeline.scheduler import make_scheduler
    from hma_framework.redis_connection import RedisNotConfigured, redis_for

    settings = _settings(ctx)
    try:
        redis = redis_for(settings)
    except RedisNotConfigured as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        make_scheduler(redis, settings).start()
    finally:
        redis.close()


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
    # Reading, bytes that are not UTF-8 become surrogate escapes: the import reports their
    # row as invalid instead of stopping with a UnicodeDecodeError.
    errors = "surrogateescape" if mode == "r" else "strict"
    if path == "-":
        if mode == "r":
            wrapped = io.TextIOWrapper(
                sys.stdin.buffer, encoding="utf-8", errors=errors, newline=""
            )
            return contextlib.nullcontext(wrapped)
        return contextlib.nullcontext(sys.stdout)
    return open(path, mode, newline="", encoding="utf-8", errors=errors)


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


@cli.command("import-hma2")
@click.argument("database_url")
@click.pass_context
def import_hma2_command(ctx: click.Context, database_url: str) -> None:
    """Import banks, contents, signals, exchanges and their credentials from an HMA 2.0 database.

    DATABASE_URL is HMA 2.0's PostgreSQL, e.g. postgresql+psycopg://user:pw@host/media_match
    (read only). Banks or exchanges that already exist here stop the import before it writes.
    """
    from hma_framework.hma2_import import Hma2Database, Hma2ImportError, import_hma2
    from hma_framework.registry import make_registry
    from hma_framework.secret_box import secret_box

    store = _store(ctx)
    try:
        source = Hma2Database(database_url)
    except Hma2ImportError as exc:
        store.close()
        raise click.ClickException(f"{mask_password(database_url)}: {exc}") from exc
    try:
        total = source.content_count()
        with click.progressbar(
            length=total, label="importing contents", file=sys.stderr, hidden=not total
        ) as bar:
            settings = _settings(ctx)
            summary = import_hma2(
                source, store, make_registry(settings), secret_box(settings), settings, bar.update
            )
    except Hma2ImportError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source.close()
        store.close()
    click.echo(
        f"imported {summary.banks} bank(s), {summary.contents} content(s) with "
        f"{summary.signals} signal(s), {summary.exchanges} exchange config(s)"
    )
    if not summary.kept_ids:
        click.echo("content ids were taken here already: imported contents have new ids")
    if summary.skipped_contents or summary.skipped_signals:
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(summary.skipped_reasons.items()))
        click.echo(
            f"skipped {summary.skipped_signals} signal(s) ({reasons}); "
            f"{summary.skipped_contents} content(s) had no usable signal",
            err=True,
        )
    found = summary.exchange_import
    if found.exchanges or found.api_credentials or found.signal_type_ratios:
        click.echo(
            f"credentials of {found.api_credentials} API(s) and {found.exchange_credentials} "
            f"exchange(s) (sealed), {found.checkpoints} fetch checkpoint(s), "
            f"{found.signal_type_ratios} signal type ratio(s)"
        )
    for note in found.notes:
        click.echo(f"note: {note}", err=True)


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
            also = "".join(f", or `[{alias}]`" for alias in section.aliases)
            click.echo(f"\n`[{section.name}]`{also} (plugin settings):\n")
            click.echo(settings_markdown_table(section.cls, (section.name,)))
        return
    settings = _settings(ctx)
    for field in iter_setting_fields():
        value: Any = settings
        for part in field.path:
            value = getattr(value, part)
        if isinstance(value, tuple):
            value = ",".join(str(part) for part in value)
        if field.path[-1] in ("secret_key", "secrets_key") and value:
            value = "***"
        elif field.path[-1].endswith("url"):
            value = mask_password(str(value))
        click.echo(f"{field.env_var}={value}")
    for section in sections:
        try:
            loaded = load_section(settings, section.name, section.cls, section.aliases)
        except SettingsError as exc:  # a plugin's bad setting: say which, not a traceback
            raise click.ClickException(str(exc)) from exc
        for field in iter_setting_fields(section.cls, (section.name,)):
            value = getattr(loaded, field.path[-1])
            if field.path[-1].endswith(SECRET_SUFFIXES) and value:
                value = "***"  # a plugin's token or secret is never echoed
            elif isinstance(value, tuple) and value and attrs.has(type(value[0])):
                value = json.dumps([attrs.asdict(part) for part in value])  # list of tables
            elif isinstance(value, tuple):
                value = ",".join(str(part) for part in value)
            click.echo(f"{field.env_var}={value}")


SECRET_SUFFIXES = ("token", "secret", "secret_key", "password")


def mask_password(url: str) -> str:
    """``scheme://user:secret@host`` becomes ``scheme://user:***@host``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if has_password else ''}@{host}"


def _register_command_modules() -> None:
    """Command groups that live in their own modules (cli.py stays one readable page)."""
    from hma_framework.cli_exchanges import exchanges
    from hma_framework.cli_retroaction import retroact
    from hma_framework.cli_stats import stats
    from hma_framework.cli_submit import submit

    cli.add_command(exchanges)
    cli.add_command(retroact)
    cli.add_command(submit)
    cli.add_command(stats)


_register_command_modules()


def main() -> None:
    cli(prog_name="hma")
