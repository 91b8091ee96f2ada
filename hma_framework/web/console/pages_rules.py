"""Rules and handlers: list, create, edit, and "would this rule fire?" (scope ``admin``).

Every form goes through the same parsers and stores as ``/rules`` and ``/handlers``
(:func:`parse_rule`, :class:`RuleStore`, :class:`ConfiguredHandlers`), so the console shows
the API's own validation messages and accepts exactly what the API accepts. Handler secrets
are write-only as there: typed into their own field, never put back into a page, not even
masked; pages show only which secret fields are set.
"""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hma_framework.actions.errors import ActionConflict, ActionNotFound, InvalidActionInput
from hma_framework.actions.handlers import handlers_of
from hma_framework.actions.rule_check import check_rule
from hma_framework.actions.rule_store import RuleStore
from hma_framework.actions.rules import parse_rule
from hma_framework.json_input import JsonInputError, parse_json
from hma_framework.store.content_queries import ContentQueries
from hma_framework.web.api_schema import FORM, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, error_page, page, runtime

RULE_EXAMPLE = (
    '{"name": "csam", "must_have": [{"label": "tag", "in": ["csam"]}], '
    '"action": {"handler": "moderation", "params": {}}}'
)
RECENT_MATCHES = 20
ActionError = (InvalidActionInput, ActionNotFound, ActionConflict)


def _status_of(error: Exception) -> int:
    if isinstance(error, ActionNotFound):
        return 404
    if isinstance(error, ActionConflict):
        return 409
    return 400


def _json_object(text: str, what: str) -> dict[str, Any]:
    """The text as a JSON object, refused as the API refuses a body (depth, NUL, syntax)."""
    try:
        value = parse_json(text or "{}")
    except JsonInputError as exc:
        raise InvalidActionInput(f"{what} is {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidActionInput(f"{what} must be a JSON object")
    return value


def _recent_matches() -> list[dict[str, Any]]:
    return ContentQueries(runtime().store).matches(limit=RECENT_MATCHES)


# --- the list, with the new-rule and new-handler forms ------------------------------------------


def _handler_types() -> dict[str, list[str]]:
    return {
        name: list(record.secret_fields)
        for name, record in sorted(runtime().registry.action_handlers.items())
    }


def _actions_page(status: int = 200, **context: Any) -> Response:
    rt = runtime()
    defaults: dict[str, Any] = {
        "message": "",
        "rule_text": "",
        "handler_form": {},
        "deleted": "",
    }
    return page(
        "actions.html",
        status=status,
        rules=RuleStore(rt.store).all(),
        handlers=handlers_of(rt).all(),
        handler_types=_handler_types(),
        rule_example=RULE_EXAMPLE,
        recent=_recent_matches(),
        **{**defaults, **context},
    )


@blueprint.get("/actions")
@console_scope("admin")
@operation("Console: actions", responses=html_page(400, 404))
def actions() -> Response:
    deleted = request.args.get("deleted", "")[:300]  # after a delete: "rule <name>" and so on
    return _actions_page(deleted=deleted if deleted.startswith(("rule ", "handler ")) else "")


# --- rules -------------------------------------------------------------------------------------


def _rule_page(status: int = 200, **context: Any) -> Response:
    """The rule form: editing ``original`` (or a new rule when it is empty), maybe checked."""
    defaults: dict[str, Any] = {"message": "", "original": "", "check": None, "match_id": None}
    return page("rule.html", status=status, recent=_recent_matches(), **{**defaults, **context})


@blueprint.post("/actions/rules")
@console_scope("admin")
@operation("Console: create rule", request=FORM, responses=html_page(400, 403, 404, 409))
def create_rule() -> Response:
    text = request.form.get("rule", "")
    try:
        RuleStore(runtime().store).create(parse_rule(_json_object(text, "the rule")))
    except ActionError as exc:
        return _actions_page(_status_of(exc), message=f"Rule not created: {exc}", rule_text=text)
    return redirect(url_for("console.actions"), code=303)


@blueprint.get("/actions/rules/<name>")
@console_scope("admin")
@operation("Console: edit rule", responses=html_page(400, 404))
def edit_rule(name: str) -> Response:
    try:
        shown = RuleStore(runtime().store).get(name)
    except ActionNotFound as exc:
        return error_page(404, str(exc))
    editable = {k: shown[k] for k in ("name", "enabled", "must_have", "must_not_have", "action")}
    return _rule_page(original=name, rule_text=json.dumps(editable, indent=2))


@blueprint.post("/actions/rules/<name>")
@console_scope("admin")
@operation("Console: replace rule", request=FORM, responses=html_page(400, 403, 404, 409))
def replace_rule(name: str) -> Response:
    """As ``PUT /rules/<name>``: the whole rule, which may rename it."""
    text = request.form.get("rule", "")
    rules = RuleStore(runtime().store)
    try:
        rules.get(name)  # 404 before complaining about the text, as the API does
        rules.replace(name, parse_rule(_json_object(text, "the rule"), name=name))
    except ActionError as exc:
        return _rule_page(
            _status_of(exc), message=f"Rule not saved: {exc}", original=name, rule_text=text
        )
    return redirect(url_for("console.actions"), code=303)


@blueprint.post("/actions/check")
@console_scope("admin")
@operation("Console: check", request=FORM, responses=html_page(400, 403, 404, 409))
def check() -> Response:
    """Would the rule in the form (saved or not) fire for the chosen recent match?"""
    text = request.form.get("rule", "")
    original = request.form.get("original", "")
    raw_match = request.form.get("match_id", "")
    match_id = int(raw_match) if raw_match.isdigit() and len(raw_match) < 19 else None
    form: dict[str, Any] = {"original": original, "rule_text": text, "match_id": match_id}
    if match_id is None:
        return _rule_page(400, message="Choose a recent match to check the rule against.", **form)
    try:
        rule = parse_rule(_json_object(text, "the rule"), name=original or None)
        result = check_rule(runtime().store, rule, match_id)
    except ActionError as exc:
        return _rule_page(_status_of(exc), message=f"Cannot check: {exc}", **form)
    return _rule_page(check=result, **form)


# --- handlers ----------------------------------------------------------------------------------


def _config_with_secrets(handler_type: str) -> dict[str, Any]:
    """The form's config and secret fields as one config; secrets given once, as secrets."""
    config = _json_object(request.form.get("config", ""), "the config")
    secrets = _json_object(request.form.get("secrets", ""), "the secret fields")
    overlap = sorted(set(config) & set(secrets))
    if overlap:
        raise InvalidActionInput(f"give {', '.join(overlap)} once, as config or as secret")
    record = runtime().registry.action_handlers.get(handler_type)
    if record is not None and (typed := sorted(set(config) & set(record.secret_fields))):
        raise InvalidActionInput(
            f"{', '.join(typed)} is secret: put it in the secret fields, which are never shown"
        )
    return {**config, **secrets}


def _refill_config(handler_type: str) -> str:
    """The config text to put back after a refusal, unless it might hold a secret value."""
    text = request.form.get("config", "")
    record = runtime().registry.action_handlers.get(handler_type)
    fields = record.secret_fields if record is not None else ()
    return "" if any(name in text for name in fields) else text


@blueprint.post("/actions/handlers")
@console_scope("admin")
@operation("Console: create handler", request=FORM, responses=html_page(400, 403, 404, 409))
def create_handler() -> Response:
    form = {k: request.form.get(k, "") for k in ("name", "type")}
    try:
        handlers_of(runtime()).create(
            name=form["name"].strip(),
            handler_type=form["type"],
            config=_config_with_secrets(form["type"]),
        )
    except ActionError as exc:
        # The secrets are never sent back into the page, even to the one who typed them.
        form["config"] = _refill_config(form["type"])
        return _actions_page(
            _status_of(exc), message=f"Handler not created: {exc}", handler_form=form
        )
    return redirect(url_for("console.actions"), code=303)


def _handler_page(name: str, status: int = 200, **context: Any) -> Response:
    handler = handlers_of(runtime()).get(name)
    defaults: dict[str, Any] = {"message": "", "config_text": json.dumps(handler["config"])}
    return page(
        "handler.html",
        status=status,
        handler=handler,
        secret_fields=_handler_types().get(handler["type"], []),
        **{**defaults, **context},
    )


@blueprint.get("/actions/handlers/<name>")
@console_scope("admin")
@operation("Console: edit handler", responses=html_page(400, 404))
def edit_handler(name: str) -> Response:
    try:
        return _handler_page(name)
    except ActionNotFound as exc:
        return error_page(404, str(exc))


@blueprint.post("/actions/handlers/<name>")
@console_scope("admin")
@operation("Console: replace handler", request=FORM, responses=html_page(400, 403, 404, 409))
def replace_handler(name: str) -> Response:
    """As ``PUT /handlers/<name>``: secrets left empty keep the stored ones."""
    handlers = handlers_of(runtime())
    try:
        kind = handlers.get(name)["type"]
        handlers.replace(
            name,
            config=_config_with_secrets(kind),
            enabled=request.form.get("enabled") == "on",
        )
    except ActionNotFound as exc:
        return error_page(404, str(exc))
    except ActionError as exc:
        return _handler_page(
            name,
            _status_of(exc),
            message=f"Handler not saved: {exc}",
            config_text=_refill_config(kind),
        )
    return redirect(url_for("console.actions"), code=303)
