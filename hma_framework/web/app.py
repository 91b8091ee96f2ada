"""The Flask app factory."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, Flask

from hma_framework.runtime import Runtime
from hma_framework.web import (
    bank_transfer,
    banks,
    content,
    deliveries,
    handlers,
    lookup,
    retroaction,
    rules,
    stats,
    status,
    submit,
    uploads,
)
from hma_framework.web.auth import install_auth
from hma_framework.web.errors import register_error_handlers


def create_app(runtime: Runtime, extra_blueprints: Sequence[Blueprint] = ()) -> Flask:
    """An app serving ``runtime``.

    Blueprints from content-source plugins are mounted, and ``extra_blueprints`` for
    embedding; each of their views must declare a scope like the core's do.
    """
    app = Flask("hma_framework")
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.web.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["hma"] = runtime
    for blueprint in (
        status.blueprint,
        submit.blueprint,
        uploads.blueprint,
        content.blueprint,
        banks.blueprint,
        bank_transfer.blueprint,
        lookup.blueprint,
        rules.blueprint,
        handlers.blueprint,
        deliveries.blueprint,
        retroaction.blueprint,
        stats.blueprint,
    ):
        app.register_blueprint(blueprint)
    for source in runtime.registry.content_sources.values():
        if source.blueprint is not None:
            app.register_blueprint(source.blueprint)
    for blueprint in extra_blueprints:
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    install_auth(app)
    return app
