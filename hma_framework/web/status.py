"""Health checks (no key needed) and the plugin listing."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from hma_framework.index.warmup import index_state, wait_until_loaded
from hma_framework.pipeline.maintenance import last_heartbeat_age
from hma_framework.runtime import Runtime
from hma_framework.store import migrate
from hma_framework.web.api_schema import (
    BOOL,
    OBJ,
    STR,
    nullable,
    obj,
    operation,
    string_map,
)
from hma_framework.web.auth import public, requires_scope

log = logging.getLogger(__name__)
blueprint = Blueprint("status", __name__)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


@blueprint.get("/health")
@public
@operation("Liveness: the process answers", responses={200: obj(status=STR)})
def liveness() -> Response:
    """The process answers. (``/status`` is HMA 2.0's plain-text check when it is on.)"""
    return jsonify(status="ok")


READINESS = obj(
    {
        "index": OBJ,
        "scheduler_heartbeat_age_seconds": nullable({"type": "number"}),
        "status": STR,
    },
    checks=string_map(BOOL),
)

#: What a caller may learn about a failing check; the log has the exception.
PUBLIC_REASONS = {
    "database": "unreachable (the server log says why)",
    "schema": "not at the newest migration; run `hma db upgrade`",
    "redis": "unreachable (the server log says why)",
    "index": "still loading in this process",
}

#: How long a readiness probe waits for a first index load it started (small indexes load
#: within it, so a fresh instance is ready on its first probe; large ones answer 503 until done).
INDEX_WAIT_SECONDS = 1.0


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
@operation(
    "Readiness: database, schema, Redis and this process's index",
    responses={200: READINESS, 503: {"allOf": [READINESS, obj(message=STR)]}},
)
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
    body: dict[str, Any] = {"checks": checks}
    if checks["database"] and checks["schema"]:
        # The indexes read the records: only worth loading (and reporting) when those answer.
        checks["index"] = wait_until_loaded(runtime, INDEX_WAIT_SECONDS)
        body["index"] = _index_state(runtime)
    failures = [f"{name}: {PUBLIC_REASONS[name]}" for name, ok in checks.items() if not ok]
    if checks["redis"]:
        body["scheduler_heartbeat_age_seconds"] = last_heartbeat_age(runtime)
    if failures:
        body["message"] = "not ready: " + "; ".join(failures)
        return jsonify(body), 503
    body["status"] = "ready"
    return jsonify(body), 200


def _index_state(runtime: Runtime) -> dict[str, Any]:
    try:
        return index_state(runtime)
    except Exception as exc:  # the records went away between the check and now
        log.warning("reading the index state failed: %s: %s", type(exc).__name__, exc)
        return {"loaded": runtime.indexes.loaded}


@blueprint.get("/plugins")
@requires_scope("read")
@operation("The installed plugins and what each provides", responses={200: OBJ})
def plugins() -> Response:
    return jsonify(_runtime().registry.as_json())
