"""Banks: the list with sizes and switches, a bank's members with search and paging.

Every form reuses the API's own code, so the console accepts and refuses exactly what the
API does: ``member_from_json`` adds members (by hash, by URL through the same guarded fetch,
or by upload), ``checked_thresholds`` validates thresholds, ``import_file`` and
``export_lines`` (``bank_io``) carry NDJSON and CSV in and out.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, stream_with_context, url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from hma_framework.bank_io import FORMATS, export_lines, guess_format
from hma_framework.registry import InvalidSignalError
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks
from hma_framework.web.api_schema import FORM, OBJ, STR, Media, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.bank_transfer import import_file
from hma_framework.web.banks import checked_thresholds, valid_bank_name
from hma_framework.web.console.common import blueprint, error_page, page, runtime
from hma_framework.web.errors import ApiError
from hma_framework.web.member_input import MemberError, member_from_json
from hma_framework.web.validation import string_list

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


def _search(name: str, query: str, after: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """One box searches by member id (digits), by ``tag:<tag>``, or by hash.

    Returns a page of members and the keyset cursor of the next page (None: no more).
    """
    queries = BankQueries(runtime().store)
    if query.startswith("tag:"):
        return queries.tagged_members(name, query[4:].strip(), after_id=after, limit=PAGE_SIZE)
    if query.isdigit() and len(query) < 19:  # longer digit strings may be hashes
        return queries.members(name, member_pk=int(query)), None
    if not query:
        found = queries.members(name, after_id=after, limit=PAGE_SIZE)
    else:
        found = []
        registry = runtime().registry
        for signal_type in sorted(registry.signal_types):  # the types this text is a hash of
            try:
                value = registry.normalize_signal(signal_type, query)
            except InvalidSignalError:
                continue
            found += queries.members(
                name, after_id=after, limit=PAGE_SIZE, signal_type=signal_type, signal_value=value
            )
        found = sorted(found, key=lambda member: int(member["id"]))[:PAGE_SIZE]
    return found, found[-1]["id"] if len(found) == PAGE_SIZE else None


def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@blueprint.get("/banks/<name>")
@console_scope("read")
@operation(
    "Console: a bank and its members",
    query={"q": STR, "after": STR},
    responses=html_page(400, 404),
)
def bank(name: str, message: str = "", status: int = 200, **extra: Any) -> Response:
    found = _bank(name)
    if found is None:
        return error_page(404, f"No bank named {name!r}.")
    query = request.args.get("q", "").strip()
    raw_after = request.args.get("after", "")
    after = int(raw_after) if raw_after.isdigit() and len(raw_after) < 19 else None
    members, next_after = _search(name, query, after)
    return page(
        "bank.html",
        status=status,
        bank=found,
        members=members,
        query=query,
        next_after=next_after,
        after=after,
        page_size=PAGE_SIZE,
        signal_types=sorted(runtime().registry.signal_types),
        thresholds={
            t: (record.threshold_limit, found["thresholds"].get(t, ""), record.default_threshold)
            for t, record in sorted(runtime().registry.signal_types.items())
        },
        formats=FORMATS,
        message=message,
        report=extra.get("report"),
        notice=extra.get("notice", ""),
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
    url = request.form.get("content_url", "").strip()
    if media is not None or url:
        row["content_type"] = request.form.get("content_type", "photo")
        if url:  # fetched through the same guards as the API (private addresses refused)
            row["content_url"] = url
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


@blueprint.post("/banks/<name>/settings")
@console_scope("admin")
@operation("Console: bank settings", request=FORM, responses=html_page(400, 403, 404, 409))
def bank_settings(name: str) -> Response:
    """Description, tags and per-signal-type thresholds (blank: the type's default)."""
    if _bank(name) is None:
        return error_page(404, f"No bank named {name!r}.")
    body: dict[str, Any] = {"tags": _comma_list(request.form.get("tags", "")), "thresholds": {}}
    for signal_type in runtime().registry.signal_types:
        given = request.form.get(f"threshold_{signal_type}", "").strip()
        if not given:
            continue
        try:
            body["thresholds"][signal_type] = int(given)
        except ValueError:
            return bank(name, f"Not saved: the {signal_type} threshold must be a number.", 400)
    try:
        tags = string_list(body, "tags")
        thresholds = checked_thresholds(body, runtime())
    except ApiError as exc:
        return bank(name, f"Not saved: {exc.message}", exc.status)
    Banks(runtime().store).update_bank(
        name,
        description=request.form.get("description", "").strip(),
        tags=tags,
        thresholds=thresholds,
    )
    return redirect(url_for("console.bank", name=name), code=303)


@blueprint.post("/banks/<name>/import")
@console_scope("admin")
@operation(
    "Console: import bank",
    request=Media("multipart/form-data", OBJ),
    responses=html_page(400, 403, 404, 409, 413, 502, 503),
)
def import_bank(name: str) -> Response:
    """A CSV or NDJSON file of members, as ``hma banks import`` and the API take them."""
    if _bank(name) is None:
        return error_page(404, f"No bank named {name!r}.")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return bank(name, "Not imported: choose a CSV or NDJSON file.", 400)
    chosen = request.form.get("format", "")
    fmt = chosen if chosen in FORMATS else guess_format(upload.filename)
    strict = request.form.get("strict") == "on"
    report, refused = import_file(runtime(), name, upload.stream, fmt, strict)
    if refused:
        message = "Import refused: some lines are invalid, and nothing was imported."
        return bank(name, message, 400, report=report)
    notice = f"Imported {report.added} members ({fmt}); {report.invalid} lines skipped."
    return bank(name, report=report, notice=notice)


@blueprint.get("/banks/<name>/export")
@console_scope("read")
@operation(
    "Console: export a bank (CSV or NDJSON)",
    query={"format": STR},
    responses={**html_page(400, 404), 200: Media("*/*")},  # text/csv or application/x-ndjson
)
def export_bank(name: str) -> Response:
    if _bank(name) is None:
        return error_page(404, f"No bank named {name!r}.")
    fmt = request.args.get("format", "ndjson")
    if fmt not in FORMATS:
        return error_page(400, f"Export as one of {', '.join(FORMATS)}.")
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = Response(
        stream_with_context(export_lines(runtime().store, name, fmt)), mimetype=mimetype
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
