"""NDJSON import and export of a bank's members over HTTP, streamed both ways."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from hma_framework.bank_io import import_members, text_lines, validate_only
from hma_framework.retroaction.automatic import request_retroaction
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError

blueprint = Blueprint("bank_transfer", __name__)


def _runtime_with_bank(name: str) -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    if BankQueries(runtime.store).bank(name) is None:
        raise ApiError(404, f"no bank named {name!r}")
    return runtime


@blueprint.post("/banks/<name>/import")
@requires_scope("admin")
def import_ndjson(name: str) -> tuple[Response, int]:
    """One JSON object per line; ``?strict=true`` refuses the import if any line is invalid."""
    runtime = _runtime_with_bank(name)
    if request.args.get("strict") in ("1", "true", "yes"):
        body = request.get_data()  # strict needs two passes: validate all, then import
        report = validate_only(
            runtime.registry, body.decode("utf-8", "replace").splitlines(), "ndjson"
        )
        if report.invalid:
            return jsonify(
                message="import refused: some lines are invalid", **report.as_json()
            ), 400
        lines = body.decode("utf-8", "replace").splitlines()
        report = import_members(runtime.store, runtime.registry, name, lines, "ndjson")
    else:
        report = import_members(
            runtime.store, runtime.registry, name, text_lines(request.stream), "ndjson"
        )
    if report.added:
        request_retroaction(runtime)
    return jsonify(report.as_json()), 200


@blueprint.get("/banks/<name>/export")
@requires_scope("read")
def export_ndjson(name: str) -> Response:
    from hma_framework.bank_io import export_lines

    runtime = _runtime_with_bank(name)
    return Response(
        stream_with_context(export_lines(runtime.store, name, "ndjson")),
        mimetype="application/x-ndjson",
    )
