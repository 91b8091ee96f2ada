"""What ``hma serve`` does once before it starts its children, run in a short-lived process.

Migrating the schema, creating the first admin key and asking the plugins which listeners
to run need the whole runtime (plugins, SQLAlchemy, numpy...). Done in the supervisor, that
import stayed resident for the instance's lifetime (~70 MiB of a process that only watches
its children); in a child process it is gone once the answer is back.
"""

from __future__ import annotations

import json

import attrs
import click

from hma_framework.settings import Settings


@attrs.frozen
class Prepared:
    #: The first admin key's token, when this start created it (shown once).
    admin_token: str | None
    #: Content sources whose listener the settings configure (``hma <name> listen``).
    listeners: list[str]

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Prepared:
        data = json.loads(text)
        return cls(admin_token=data["admin_token"], listeners=list(data["listeners"]))


def listener_sources(settings: Settings) -> list[str]:
    """Content sources whose listener these settings configure (``hma <name> listen``)."""
    from hma_framework.registry import make_registry

    registry = make_registry(settings)
    return [
        name for name, record in registry.content_sources.items() if record.runs_listener(settings)
    ]


def ensure_first_admin_key(settings: Settings) -> str | None:
    """Create an admin key if no live key exists; return its token (shown once) or None."""
    from hma_framework.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        keys = runtime.api_keys
        if keys.count_live():
            return None
        return keys.create("first admin key (created by hma serve)", ["admin"]).token
    finally:
        runtime.close()


def prepare(settings: Settings, role: str) -> Prepared:
    """Bring the schema up to date (``all``) or check it is (``api``); make the first key."""
    from hma_framework.runtime import build_runtime
    from hma_framework.store import migrate

    runtime = build_runtime(settings)
    try:
        if role == "all":
            migrate.upgrade(runtime.store)
        elif role == "api" and not migrate.is_up_to_date(runtime.store):
            raise click.ClickException(
                "the database schema is not current: run `hma db upgrade` first"
            )
    finally:
        runtime.close()
    token = ensure_first_admin_key(settings) if role == "all" else None
    listeners = listener_sources(settings) if role in ("all", "worker") else []
    return Prepared(admin_token=token, listeners=listeners)
