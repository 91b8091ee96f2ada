"""Deleting a rule or a handler from the console (scope ``admin``, as ``DELETE /rules``...).

Deleting is two steps with no script: the edit page links to a confirmation page, whose form
(carrying the session's CSRF token) posts ``confirm=yes``. The deletes are the API's own
(:meth:`RuleStore.delete`, :meth:`ConfiguredHandlers.delete`), so a handler some rule still
uses is refused with the API's message, and one with deliveries still to make is deleted
only when the confirmation page's "drop them" box is ticked (the API's ``?force=true``).
"""

from __future__ import annotations

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hma_framework.actions.errors import ActionNotFound
from hma_framework.actions.handlers import handlers_of
from hma_framework.actions.rule_store import RuleStore
from hma_framework.web.api_schema import FORM, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, error_page, page, runtime
from hma_framework.web.console.pages_rules import ActionError, _status_of

#: kind -> (the page's noun, the confirm route, the delete route)
KINDS = {
    "rule": ("rule", "console.confirm_delete_rule", "console.delete_rule"),
    "handler": ("handler", "console.confirm_delete_handler", "console.delete_handler"),
}


def _confirm_page(kind: str, name: str, status: int = 200, message: str = "") -> Response:
    return page(
        "confirm_delete.html",
        status=status,
        kind=kind,
        name=name,
        message=message,
        action=url_for(KINDS[kind][2], name=name),
        back=url_for(f"console.edit_{kind}", name=name),
        offers_force=kind == "handler",
    )


def _confirmed() -> bool:
    return request.form.get("confirm") == "yes"


@blueprint.get("/actions/rules/<name>/delete")
@console_scope("admin")
@operation("Console: confirm deleting a rule", responses=html_page(404))
def confirm_delete_rule(name: str) -> Response:
    try:
        RuleStore(runtime().store).get(name)
    except ActionNotFound as exc:
        return error_page(404, str(exc))
    return _confirm_page("rule", name)


@blueprint.post("/actions/rules/<name>/delete")
@console_scope("admin")
@operation("Console: delete rule", request=FORM, responses=html_page(400, 403, 404, 409))
def delete_rule(name: str) -> Response:
    """As ``DELETE /rules/<name>``, once confirmed."""
    if not _confirmed():
        return _confirm_page("rule", name, 400, "Confirm to delete the rule.")
    try:
        RuleStore(runtime().store).delete(name)
    except ActionError as exc:
        return error_page(_status_of(exc), f"Rule not deleted: {exc}")
    return redirect(url_for("console.actions", deleted=f"rule {name}"), code=303)


@blueprint.get("/actions/handlers/<name>/delete")
@console_scope("admin")
@operation("Console: confirm deleting a handler", responses=html_page(404))
def confirm_delete_handler(name: str) -> Response:
    try:
        handlers_of(runtime()).get(name)
    except ActionNotFound as exc:
        return error_page(404, str(exc))
    return _confirm_page("handler", name)


@blueprint.post("/actions/handlers/<name>/delete")
@console_scope("admin")
@operation("Console: delete handler", request=FORM, responses=html_page(400, 403, 404, 409))
def delete_handler(name: str) -> Response:
    """As ``DELETE /handlers/<name>[?force=true]``, once confirmed."""
    if not _confirmed():
        return _confirm_page("handler", name, 400, "Confirm to delete the handler.")
    try:
        handlers_of(runtime()).delete(name, force=request.form.get("force") == "yes")
    except ActionNotFound as exc:
        return error_page(404, f"Handler not deleted: {exc}")
    except ActionError as exc:
        return _confirm_page("handler", name, _status_of(exc), f"Handler not deleted: {exc}")
    return redirect(url_for("console.actions", deleted=f"handler {name}"), code=303)
