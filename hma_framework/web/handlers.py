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
from hma_framework.web.api_schema import (
    BOOL,
    OBJ,
    STR,
    TIME,
    array,
    errors,
    nullable,
    obj,
    operation,
    string_map,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.rules import install_action_errors
from hma_framework.web.validation import field, json_body

blueprint = Blueprint("handlers", __name__)
install_action_errors(blueprint)

HANDLER = obj(
    name=STR,
    type=STR,
    enabled=BOOL,
    disabled_reason=nullable(STR),
    config=OBJ,
    secrets_set=array(STR),
    installed=BOOL,
    created_at=TIME,
    updated_at=TIME,
)


def _handlers() -> ConfiguredHandlers:
    runtime: Runtime = current_app.extensions["hma"]
    return handlers_of(runtime)


@blueprint.post("/handlers")
@requires_scope("admin")
@operation(
    "Configure an action handler",
    request=obj({"config": OBJ, "enabled": BOOL}, name=STR, type=STR),
    responses={201: HANDLER, **errors(409)},
)
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
@operation("List the configured handlers", responses={200: obj(handlers=array(HANDLER))})
def list_handlers() -> Response:
    return jsonify(handlers=_handlers().all())


@blueprint.get("/handlers/types")
@requires_scope("admin")
@operation(
    "The installed handler types and their configuration fields",
    responses={
        200: obj(
            types=string_map(
                obj(
                    description=STR,
                    required=array(STR),
                    optional=array(STR),
                    secret_fields=array(STR),
                )
            )
        )
    },
)
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
@operation("A configured handler (secrets are never shown)", responses={200: HANDLER})
def get_handler(name: str) -> Response:
    return jsonify(_handlers().get(name))


@blueprint.put("/handlers/<name>")
@requires_scope("admin")
@operation(
    "Replace a handler's configuration or state",
    request=obj({"config": OBJ, "enabled": BOOL, "type": STR}),
    responses={200: HANDLER, **errors(409)},
)
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
@operation("Delete a handler", query={"force": STR}, responses={204: None, **errors(409)})
def delete_handler(name: str) -> tuple[str, int]:
    _handlers().delete(name, force=request.args.get("force") in ("1", "true", "yes"))
    return "", 204
