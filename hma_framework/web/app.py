"""The Flask app factory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import Blueprint, Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, Map, ValidationError

from hma_framework.runtime import Runtime
from hma_framework.web import (
    bank_transfer,
    banks,
    content,
    deliveries,
    exchanges,
    handlers,
    lookup,
    match_opinions,
    metrics,
    openapi,
    retroaction,
    rules,
    stats,
    status,
    submit,
    uploads,
)
from hma_framework.web.auth import install_auth
from hma_framework.web.body_limit import CappedRequest
from hma_framework.web.errors import register_error_handlers
from hma_framework.web.request_ids import install_request_ids
from hma_framework.web.validation import MAX_ID, refuse_nul_characters


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route, bounded to what a BIGINT id column can hold.

    An id past 2**63 - 1 names nothing, so the route does not match (404) instead of the
    database driver overflowing (500).
    """

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)

    def to_python(self, value: str) -> Any:
        """A 404 at once: werkzeug's matcher, told only that the value does not convert,
        answered 405 for a method other than GET (the rule's other methods still matched)."""
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound(f"not found: no id is as large as {value[:40]}") from None


class HmaFlask(Flask):
    """Flask, remembering which hooks and views are plain functions.

    Flask asks ``inspect.iscoroutinefunction`` of every before/after/teardown hook and the view
    on every request (nine times per ``GET /lookup``). The answer never changes for a given
    function, so it is kept; the memo is bounded in case something passes a fresh callable
    per request.
    """

    _MEMO_LIMIT = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_functions: dict[Any, bool] = {}

    def answers_at_once(self, target: bytes) -> bool:
        """Whether a body-less GET of ``target`` is answered without waiting on anything.

        The API's gunicorn worker answers such requests on its event loop instead of handing
        them to a thread (see ``gunicorn_worker``). Only hash lookups qualify, once the
        indexes are loaded: in memory, a fraction of a millisecond each (before that, a
        lookup waits for the load, which must not hold the event loop).
        """
        if not target.startswith(b"/lookup?"):
            return False
        runtime = self.extensions.get("hma")
        return runtime is not None and runtime.indexes.loaded

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        memo = self._plain_functions
        try:
            plain = memo.get(func)
        except TypeError:  # an unhashable callable: ask every time
            return super().ensure_sync(func)
        if plain:
            return func
        wrapped = super().ensure_sync(func)
        if plain is None:
            if len(memo) >= self._MEMO_LIMIT:
                memo.clear()
            memo[func] = wrapped is func
        return wrapped


def create_app(runtime: Runtime, extra_blueprints: Sequence[Blueprint] = ()) -> Flask:
    """An app serving ``runtime``.

    Blueprints from content-source plugins are mounted, and ``extra_blueprints`` for
    embedding; each of their views must declare a scope like the core's do.
    """
    app = HmaFlask("hma_framework")
    app.request_class = CappedRequest
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.web.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["hma"] = runtime
    app.url_map.converters["int"] = IdConverter  # before any route is added
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
        metrics.blueprint,
        exchanges.blueprint,
        match_opinions.blueprint,
        retroaction.blueprint,
        stats.blueprint,
        openapi.blueprint,
    ):
        app.register_blueprint(blueprint)
    for source in runtime.registry.content_sources.values():
        if source.blueprint is not None:
            app.register_blueprint(source.blueprint)
    for blueprint in extra_blueprints:
        app.register_blueprint(blueprint)
    if runtime.settings.compat_hma2.enabled:
        from hma_framework.web import compat_hma2

        compat_hma2.install(app)
    from hma_framework.web import console

    console.install(app)
    register_error_handlers(app)
    app.before_request(refuse_nul_characters)
    install_auth(app)
    install_request_ids(app)
    metrics.install_request_metrics(app)
    return app
