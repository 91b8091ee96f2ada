"""Deliveries (failing first, attempts, redeliver) and Rules and handlers (list and create).

Rules and handlers are created through the same parsers and stores as ``/rules`` and
``/handlers``, so the console shows the API's own validation messages. Handler secrets are
write-only here as there: the form never refills them and pages show only which are set.
"""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hma_framework.actions import deliveries as records
from hma_framework.actions.delivering import enqueue_deliveries
from hma_framework.actions.delivery_queries import DeliveryQueries
from hma_framework.actions.errors import ActionConflict, ActionNotFound, InvalidActionInput
from hma_framework.actions.handlers import handlers_of
from hma_framework.actions.rule_store import RuleStore
from hma_framework.actions.rules import parse_rule
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, error_page, page, runtime

PAGE_SIZE = 50
RULE_EXAMPLE = (
    '{"name": "csam", "must_have": [{"label": "tag", "in": ["csam"]}], '
    '"action": {"handler": "moderation", "params": {}}}'
)


@blueprint.get("/deliveries")
@console_scope("read")
def deliveries() -> Response:
    """Given-up deliveries first, then the newest of every status (or the one filtered)."""
    queries = DeliveryQueries(runtime().store)
    status = request.args.get("status") or None
    if status is not None and status not in records.STATUSES:
        return error_page(400, f"status must be one of {', '.join(records.STATUSES)}")
    failing = [] if status else queries.find(status=records.FAILED, limit=PAGE_SIZE)
    newest = queries.find(status=status, limit=PAGE_SIZE)
    shown = {d["id"] for d in failing}
    return page(
        "deliveries.html",
        failing=failing,
        newest=[d for d in newest if d["id"] not in shown],
        statuses=records.STATUSES,
        chosen_status=status or "",
    )


@blueprint.get("/deliveries/<int:delivery_id>")
@console_scope("read")
def delivery(delivery_id: int) -> Response:
    found = DeliveryQueries(runtime().store).get(delivery_id)
    if found is None:
        return error_page(404, f"No delivery {delivery_id}.")
    return page("delivery.html", delivery=found)


@blueprint.post("/deliveries/<int:delivery_id>/redeliver")
@console_scope("admin")
def redeliver(delivery_id: int) -> Response:
    rt = runtime()
    try:
        job_id = records.redeliver(rt.store, delivery_id)
    except ActionNotFound as exc:
        return error_page(404, str(exc))
    except ActionConflict as exc:
        return error_page(409, str(exc))
    enqueue_deliveries(rt, job_id)
    return redirect(url_for("console.delivery", delivery_id=delivery_id), code=303)


def _actions_page(status: int = 200, **context: Any) -> Response:
    rt = runtime()
    handler_types = {
        name: list(record.secret_fields)
        for name, record in sorted(rt.registry.action_handlers.items())
    }
    defaults: dict[str, Any] = {"message": "", "rule_text": "", "handler_form": {}}
    return page(
        "actions.html",
        status=status,
        rules=RuleStore(rt.store).all(),
        handlers=handlers_of(rt).all(),
        handler_types=handler_types,
        rule_example=RULE_EXAMPLE,
        **{**defaults, **context},
    )


@blueprint.get("/actions")
@console_scope("admin")
def actions() -> Response:
    return _actions_page()


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidActionInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidActionInput(f"{what} must be a JSON object")
    return value


@blueprint.post("/actions/rules")
@console_scope("admin")
def create_rule() -> Response:
    text = request.form.get("rule", "")
    try:
        RuleStore(runtime().store).create(parse_rule(_json_object(text, "the rule")))
    except (InvalidActionInput, ActionNotFound, ActionConflict) as exc:
        return _actions_page(_status_of(exc), message=f"Rule not created: {exc}", rule_text=text)
    return redirect(url_for("console.actions"), code=303)


@blueprint.post("/actions/handlers")
@console_scope("admin")
def create_handler() -> Response:
    rt = runtime()
    form = {k: request.form.get(k, "") for k in ("name", "type", "config")}
    try:
        config = _json_object(form["config"], "the config")
        secrets = _json_object(request.form.get("secrets", ""), "the secret fields")
        overlap = sorted(set(config) & set(secrets))
        if overlap:
            raise InvalidActionInput(f"give {', '.join(overlap)} once, as config or as secret")
        handlers_of(rt).create(
            name=form["name"].strip(), handler_type=form["type"], config={**config, **secrets}
        )
    except (InvalidActionInput, ActionNotFound, ActionConflict) as exc:
        # The secrets are never sent back into the page, even to the one who typed them.
        return _actions_page(
            _status_of(exc), message=f"Handler not created: {exc}", handler_form=form
        )
    return redirect(url_for("console.actions"), code=303)


def _status_of(error: Exception) -> int:
    if isinstance(error, ActionNotFound):
        return 404
    if isinstance(error, ActionConflict):
        return 409
    return 400
