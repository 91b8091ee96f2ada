"""HMA 2.0's API (``/h``, ``/m``, ``/c``, ``/status``), so its clients switch without a change.

The views here translate requests and answers only; banks, members, matching and hashing are
the services the rest of the app uses. Mounted at the root when
``compat_hma2.enabled`` is on (the default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask

from hma_framework.web.compat_hma2 import (
    banks,
    content,
    exchanges,
    hashing,
    matching,
    signal_types,
    status,
)
from hma_framework.web.compat_hma2.auth import install_keyless_auth

BLUEPRINTS: tuple[Blueprint, ...] = (
    status.blueprint,
    hashing.blueprint,
    matching.blueprint,
    banks.blueprint,
    signal_types.blueprint,
    content.blueprint,
    exchanges.blueprint,
)


def _collapse_leading_slashes(wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """Serve ``//c/banks`` as ``/c/banks``: clients join a base URL ending in ``/`` with a
    path starting with one."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("//"):
            environ["PATH_INFO"] = "/" + path.lstrip("/")
        return wsgi_app(environ, start_response)

    return app


def install(app: Flask) -> None:
    """Mount the compatibility routes and the keyless options they may use."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    install_keyless_auth(app)
    app.wsgi_app = _collapse_leading_slashes(app.wsgi_app)  # type: ignore[method-assign]
