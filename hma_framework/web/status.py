"""Health checks (no key needed) and the plugin listing."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from hma_framework.pipeline.maintenance import last_heartbeat_age
from hma_framework.runtime import Runtime
from hma_framework.store import migrate
from hma_framework.web.auth import public, requires_scope

blueprint = Blueprint("status", __name__)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


@blueprint.get("/health")
@public
def liveness() -> Response:
    """The process answers. (``/status`` is HMA 2.0's plain-text check when it is on.)"""
    return jsonify(status="ok")


def _check(name: str, check: Any) -> tuple[bool, str]:
    try:
        check()
    except Exception as exc:
        return False, f"{name}: {type(exc).__name__}: {exc}"
    return True, ""


@blueprint.get("/status/ready")
@public
def readiness() -> tuple[Response, int]:
    runtime = _runtime()

    def schema_is_current() -> None:
        if not migrate.is_up_to_date(runtime.store):
            raise RuntimeError("schema is not at the newest migration; run `hma db upgrade`")

    checks = {
        "database": _check("database", runtime.store.ping),
        "schema": _check("schema", schema_is_current),
        "redis": _check("redis", runtime.redis.ping),
    }
    failures = [message for ok, message in checks.values() if not ok]
    body: dict[str, Any] = {"checks": {name: ok for name, (ok, _) in checks.items()}}
    if checks["redis"][0]:
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
