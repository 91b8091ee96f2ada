"""Configured action handlers: ``/handlers`` and ``/handlers/<name>`` (scope ``admin``).

Secret config fields (a webhook's signing secrets, secret headers) are accepted and never
returned: views show which secrets are set, not what they are. A ``PUT`` that leaves a secret
out keeps the stored one, so rotating a URL does not mean resending the secret.
"""

from __future__ import annotations

from typing import Any

import attrs
from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.actions.handlers import ConfiguredHandlers, handlers_of
from hma_framework.runtime import Runtime
from hma_framework.web.auth import requires_scope
from hma_framework.web.rules import install_action_errors
from hma_framework.web.validation import field, json_body

blueprint = Blueprint("handlers", __name__)
install_action_errors(blueprint)


def _handlers() -> ConfiguredHandlers:
    runtime: Runtime = current_app.extensions["hma"]
    return handlers_of(runtime)


@blueprint.post("/handlers")
@requires_scope("admin")
def create_handler() -> tuple[Response, int]:
    body = json_body()
    created = _handlers().create(
        name=field(body, "name", str),
        handler_type=field(body, "type", str),
        config=field(body, "config", dict, required=False, default={}),
        enabled=bool(field(body, "enabled", bool, required=False, default=True)),
    )
    return jsonify(created), 201


@blueprint.get("/handlers")
@requires_scope("admin")
def list_handlers() -> Response:
    return jsonify(handlers=_handlers().all())


@blueprint.get("/handlers/types")
@requires_scope("admin")
def handler_types() -> Response:
    """The installed handler types and their config fields, for writing a configuration."""
    runtime: Runtime = current_app.extensions["hma"]
    types: dict[str, Any] = {}
    for name, record in sorted(runtime.registry.action_handlers.items()):
        fields = attrs.fields(record.config_class)
        types[name] = {
            "description": record.description,
            "required": [f.name for f in fields if f.default is attrs.NOTHING],
            "optional": [f.name for f in fields if f.default is not attrs.NOTHING],
            "secret_fields": list(record.secret_fields),
        }
    return jsonify(types=types)


@blueprint.get("/handlers/<name>")
@requires_scope("admin")
def get_handler(name: str) -> Response:
    return jsonify(_handlers().get(name))


@blueprint.put("/handlers/<name>")
@requires_scope("admin")
def replace_handler(name: str) -> Response:
    """Replace ``config`` (secrets left out are kept) and/or set ``enabled``.

    ``{"enabled": true}`` alone re-enables a handler a 410 disabled, keeping its config.
    """
    handlers = _handlers()
    handlers.get(name)  # 404 before complaining about the body
    body = json_body()
    return jsonify(
        handlers.replace(
            name,
            config=field(body, "config", dict, required=False),
            enabled=field(body, "enabled", bool, required=False),
            handler_type=field(body, "type", str, required=False),
        )
    )


@blueprint.delete("/handlers/<name>")
@requires_scope("admin")
def delete_handler(name: str) -> tuple[str, int]:
    _handlers().delete(name, force=request.args.get("force") in ("1", "true", "yes"))
    return "", 204
