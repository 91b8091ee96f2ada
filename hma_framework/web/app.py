"""The Flask app factory."""

from __future__ import annotations

from flask import Flask

from hma_framework.runtime import Runtime
from hma_framework.web import status
from hma_framework.web.auth import install_auth
from hma_framework.web.errors import register_error_handlers


def create_app(runtime: Runtime) -> Flask:
    """An app serving ``runtime``; blueprints from content-source plugins are mounted too."""
    app = Flask("hma_framework")
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.web.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["hma"] = runtime
    app.register_blueprint(status.blueprint)
    for source in runtime.registry.content_sources.values():
        if source.blueprint is not None:
            app.register_blueprint(source.blueprint)
    register_error_handlers(app)
    install_auth(app)
    return app
