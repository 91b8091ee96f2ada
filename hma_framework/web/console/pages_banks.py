"""Banks: the list with sizes and switches, a bank's members with search and paging.

Adding members goes through ``member_from_json``, the API's own row parser, so the console
accepts and refuses exactly what ``POST /banks/<name>/members`` does.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from hma_framework.registry import InvalidSignalError
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks
from hma_framework.web.api_schema import FORM, OBJ, STR, Media, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.banks import valid_bank_name
from hma_framework.web.console.common import blueprint, error_page, page, runtime
from hma_framework.web.member_input import MemberError, member_from_json

PAGE_SIZE = 50


def _bank(name: str) -> dict[str, Any] | None:
    return BankQueries(runtime().store).bank(name)


@blueprint.get("/banks")
@console_scope("read")
@operation("Console: banks", responses=html_page())
def banks() -> Response:
    return page("banks.html", banks=BankQueries(runtime().store).banks())


@blueprint.post("/banks")
@console_scope("admin")
@operation("Console: create a bank", request=FORM, responses=html_page(400, 409))
def create_bank() -> Response:
    name = request.form.get("name", "").strip()
    if not valid_bank_name(name):
        return error_page(400, "A bank name is 1-128 letters, digits, '_', '.' or '-'.")
    tags = [t.strip() for t in request.form.get("tags", "").split(",") if t.strip()]
    try:
        Banks(runtime().store).create_bank(name, tags=tags)
    except IntegrityError:
        return error_page(409, f"A bank named {name!r} already exists.")
    return redirect(url_for("console.bank", name=name), code=303)


@blueprint.post("/banks/<name>/enabled")
@console_scope("admin")
@operation("Console: switch a bank on or off", request=FORM, responses=html_page(404))
def toggle_bank(name: str) -> Response:
    if _bank(name) is None:
        return error_page(404, f"No bank named {name!r}.")
    Banks(runtime().store).set_bank_enabled(name, request.form.get("enabled") == "true")
    back = "console.bank" if request.form.get("back") == "bank" else "console.banks"
    return redirect(url_for(back, name=name) if back == "console.bank" else url_for(back), 303)


def _search(name: str, query: str, after: int | None) -> list[dict[str, Any]]:
    """One box searches by member id (digits), by ``tag:<tag>``, or by hash."""
    queries = BankQueries(runtime().store)
    if not query:
        return queries.members(name, after_id=after, limit=PAGE_SIZE)
    if query.isdigit():
        return queries.members(name, member_pk=int(query))
    if query.startswith("tag:"):
        return queries.members(name, after_id=after, limit=PAGE_SIZE, tag=query[4:].strip())
    found: list[dict[str, Any]] = []
    registry = runtime().registry
    for signal_type in sorted(registry.signal_types):  # the types this text is a valid hash of
        try:
            value = registry.normalize_signal(signal_type, query)
        except InvalidSignalError:
            continue
        found += queries.members(
            name, after_id=after, limit=PAGE_SIZE, signal_type=signal_type, signal_value=value
        )
    return found[:PAGE_SIZE]


@blueprint.get("/banks/<name>")
@console_scope("read")
@operation(
    "Console: a bank and its members",
    query={"q": STR, "after": STR},
    responses=html_page(400, 404),
)
def bank(name: str, message: str = "", status: int = 200) -> Response:
    found = _bank(name)
    if found is None:
        return error_page(404, f"No bank named {name!r}.")
    query = request.args.get("q", "").strip()
    raw_after = request.args.get("after", "")
    after = int(raw_after) if raw_after.isdigit() and len(raw_after) < 19 else None
    members = _search(name, query, after)
    next_after = members[-1]["id"] if len(members) == PAGE_SIZE else None
    return page(
        "bank.html",
        status=status,
        bank=found,
        members=members,
        query=query,
        next_after=next_after,
        signal_types=sorted(runtime().registry.signal_types),
        message=message,
    )


@blueprint.post("/banks/<name>/members")
@console_scope("admin")
@operation(
    "Console: add a member",
    request=Media("multipart/form-data", OBJ),
    responses=html_page(400, 404, 413, 502, 503),
)
def add_member(name: str) -> Response:
    if _bank(name) is None:
        return error_page(404, f"No bank named {name!r}.")
    row: dict[str, Any] = {
        "tags": request.form.get("tags", ""),
        "notes": request.form.get("notes", ""),
    }
    upload = request.files.get("file")
    media = upload.read() if upload is not None and upload.filename else None
    if media is not None:
        row["content_type"] = request.form.get("content_type", "photo")
    else:
        row["signal_type"] = request.form.get("signal_type", "")
        row["signal_value"] = request.form.get("signal_value", "").strip()
    try:
        member = member_from_json(runtime(), row, media)
    except MemberError as exc:
        return bank(name, message=f"Not added: {exc}", status=exc.status)
    (member_id,) = Banks(runtime().store).add_members(name, [member])
    return redirect(url_for("console.bank", name=name, q=str(member_id)), code=303)


@blueprint.post("/banks/<name>/members/<int:member_id>/enabled")
@console_scope("admin")
@operation("Console: switch a member on or off", request=FORM, responses=html_page(404))
def toggle_member(name: str, member_id: int) -> Response:
    if not BankQueries(runtime().store).members(name, member_pk=member_id):
        return error_page(404, f"Bank {name!r} has no member {member_id}.")
    Banks(runtime().store).set_member_enabled(member_id, request.form.get("enabled") == "true")
    return redirect(url_for("console.bank", name=name, q=str(member_id)), code=303)
