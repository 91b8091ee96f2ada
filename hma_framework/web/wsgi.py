"""The WSGI entry point gunicorn loads: ``hma_framework.web.wsgi:create_wsgi_app()``."""

from __future__ import annotations

from flask import Flask

from hma_framework.data_folder import restrict_umask
from hma_framework.index.warmup import load_in_background
from hma_framework.logging_setup import configure_logging
from hma_framework.runtime import build_runtime
from hma_framework.settings import load_settings
from hma_framework.web.app import create_app


def create_wsgi_app() -> Flask:
    restrict_umask()  # also when an operator runs gunicorn themselves
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = build_runtime(settings)
    # Warm the indexes in the background; a query that arrives first waits for them.
    load_in_background(runtime)
    return create_app(runtime)
