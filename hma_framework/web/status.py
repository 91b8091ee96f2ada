"""Health checks (no key needed) and the plugin listing."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from hma_framework.pipeline.maintenance import last_heartbeat_age
from hma_framework.runtime import Runtime
from hma_framework.store import migrate
from hma_framework.web.auth import public, requires_scope

log = logging.getLogger(__name__)
blueprint = Blueprint("status", __name__)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


@blueprint.get("/health")
@public
def liveness() -> Response:
    """The process answers. (``/status`` is HMA 2.0's plain-text check when it is on.)"""
    return jsonify(status="ok")


#: What a caller may learn about a failing check; the log has the exception.
PUBLIC_REASONS = {
    "database": "unreachable (the server log says why)",
    "schema": "not at the newest migration; run `hma db upgrade`",
    "redis": "unreachable (the server log says why)",
}


def _check(name: str, check: Any) -> bool:
    """Run one check; the reason it failed goes to the log, never to the (public) caller.

    Exception text names resolved addresses, socket paths and user names: useful to the
    operator, and to an attacker mapping the deployment.
    """
    try:
        check()
    except Exception as exc:
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return False
    return True


@blueprint.get("/status/ready")
@public
def readiness() -> tuple[Response, int]:
    runtime = _runtime()

    def schema_is_current() -> None:
        if not migrate.is_up_to_date(runtime.store):
            raise RuntimeError("schema is not at the newest migration")

    checks = {
        "database": _check("database", runtime.store.ping),
        "schema": _check("schema", schema_is_current),
        "redis": _check("redis", runtime.redis.ping),
    }
    failures = [f"{name}: {PUBLIC_REASONS[name]}" for name, ok in checks.items() if not ok]
    body: dict[str, Any] = {"checks": checks}
    if checks["redis"]:
        body["scheduler_heartbeat_age_seconds"] = last_heartbeat_age(runtime)
    if failures:
        body["message"] = "not ready: " + "; ".join(failures)
        return jsonify(body), 503
    body["status"] = "ready"
    return jsonify(body), 200


@blueprint.get("/plugins")
@requires_scope("read")
def plugins() -> Response:
    return jsonify(_runtime().registry.as_json())
