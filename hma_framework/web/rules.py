"""Action rules: ``/rules`` and ``/rules/<name>`` (scope ``admin``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from hma_framework.actions.errors import ActionConflict, ActionNotFound, InvalidActionInput
from hma_framework.actions.rule_store import RuleStore
from hma_framework.actions.rules import parse_rule
from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import (
    ANY,
    BOOL,
    STR,
    TIME,
    array,
    errors,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import json_error
from hma_framework.web.validation import json_body

blueprint = Blueprint("rules", __name__)

RULE = obj(
    name=STR,
    enabled=BOOL,
    must_have=array(ANY),
    must_not_have=array(ANY),
    action=ANY,
    created_at=TIME,
    updated_at=TIME,
)
RULE_INPUT = obj(
    {"name": STR, "enabled": BOOL, "must_have": array(ANY), "must_not_have": array(ANY)},
    action=ANY,
)


def install_action_errors(target: Blueprint) -> None:
    """Answer the actions package's errors with the status a client can act on."""

    statuses: tuple[tuple[type[Exception], int], ...] = (
        (InvalidActionInput, 400),
        (ActionNotFound, 404),
        (ActionConflict, 409),
    )
    for error_type, status in statuses:

        def answer(error: Exception, status: int = status) -> tuple[Response, int]:
            return json_error(status, str(error))

        target.register_error_handler(error_type, answer)


install_action_errors(blueprint)


def _rules() -> RuleStore:
    runtime: Runtime = current_app.extensions["hma"]
    return RuleStore(runtime.store)


@blueprint.post("/rules")
@requires_scope("admin")
@operation("Create an action rule", request=RULE_INPUT, responses={201: RULE, **errors(409)})
def create_rule() -> tuple[Response, int]:
    return jsonify(_rules().create(parse_rule(json_body()))), 201


@blueprint.get("/rules")
@requires_scope("admin")
@operation("List the action rules", responses={200: obj(rules=array(RULE))})
def list_rules() -> Response:
    return jsonify(rules=_rules().all())


@blueprint.get("/rules/<name>")
@requires_scope("admin")
@operation("An action rule", responses={200: RULE})
def get_rule(name: str) -> Response:
    return jsonify(_rules().get(name))


@blueprint.put("/rules/<name>")
@requires_scope("admin")
@operation("Replace an action rule", request=RULE_INPUT, responses={200: RULE, **errors(409)})
def replace_rule(name: str) -> Response:
    """Replace the whole rule (same shape as POST; ``name`` may be left out or renamed)."""
    rules = _rules()
    rules.get(name)  # 404 before complaining about the body
    return jsonify(rules.replace(name, parse_rule(json_body(), name=name)))


@blueprint.delete("/rules/<name>")
@requires_scope("admin")
@operation("Delete an action rule", responses={204: None, **errors(409)})
def delete_rule(name: str) -> tuple[str, int]:
    _rules().delete(name)
    return "", 204
