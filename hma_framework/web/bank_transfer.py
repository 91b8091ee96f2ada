"""NDJSON import and export of a bank's members over HTTP, streamed both ways.

An import is spooled to a temporary file before the first row is written: a body over
``web.max_body_bytes`` (possibly sent chunked, with no Content-Length to check up front) is
refused with 413 having written nothing, instead of after some batches were committed.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import IO

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from werkzeug.exceptions import RequestEntityTooLarge

from hma_framework.bank_io import ImportReport, import_members, text_lines, validate_only
from hma_framework.retroaction.automatic import request_retroaction
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.web.api_schema import INT, STR, Media, array, obj, operation
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError

blueprint = Blueprint("bank_transfer", __name__)
#: Bodies up to this size stay in memory while spooled; larger ones go to a temporary file.
SPOOL_IN_MEMORY_BYTES = 1 << 20
IMPORT_REPORT = obj(added=INT, invalid=INT, errors=array(obj(line=INT, message=STR)))


def _runtime_with_bank(name: str) -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    if BankQueries(runtime.store).bank(name) is None:
        raise ApiError(404, f"no bank named {name!r}")
    return runtime


def _spooled_body(limit: int) -> IO[bytes]:
    """The whole request body, read before anything is imported; 413 past ``limit``."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
    try:
        shutil.copyfileobj(request.stream, spool)  # the stream raises past MAX_CONTENT_LENGTH
        if spool.tell() > limit:
            raise RequestEntityTooLarge()
    except RequestEntityTooLarge as exc:
        spool.close()
        raise ApiError(
            413,
            f"the import is larger than the limit of {limit} bytes; nothing was imported "
            "(split the file, or use `hma banks import`)",
        ) from exc
    spool.seek(0)
    return spool


def import_file(
    runtime: Runtime, name: str, body: IO[bytes], fmt: str, strict: bool
) -> tuple[ImportReport, bool]:
    """Import a seekable file of members into bank ``name``: the API's and the console's path.

    Returns the report and whether the import was refused (``strict`` and some line is
    invalid: nothing written). Retroaction is asked for when rows were added.
    """
    if strict:
        report = validate_only(runtime.registry, text_lines(body), fmt)
        if report.invalid:
            return report, True
        body.seek(0)
    report = import_members(runtime.store, runtime.registry, name, text_lines(body), fmt)
    if report.added:
        request_retroaction(runtime)
    return report, False


@blueprint.post("/banks/<name>/import")
@requires_scope("admin")
@operation(
    "Import members from NDJSON (one member object a line)",
    request=Media("application/x-ndjson", {"type": "string"}),
    query={"strict": STR},
    responses={200: IMPORT_REPORT, 400: obj({"message": STR}, message=STR)},
)
def import_ndjson(name: str) -> tuple[Response, int]:
    """One JSON object per line; ``?strict=true`` refuses the import if any line is invalid.

    The answer says what was written: ``added`` rows, and the ``invalid`` ones skipped.
    """
    runtime = _runtime_with_bank(name)
    strict = request.args.get("strict") in ("1", "true", "yes")
    with _spooled_body(runtime.settings.web.max_body_bytes) as body:
        report, refused = import_file(runtime, name, body, "ndjson", strict)
    if refused:
        return jsonify(
            message="import refused: some lines are invalid; nothing was imported",
            **report.as_json(),
        ), 400
    return jsonify(report.as_json()), 200


@blueprint.get("/banks/<name>/export")
@requires_scope("read")
@operation(
    "Export the bank's members as NDJSON, streamed",
    responses={200: Media("application/x-ndjson", {"type": "string"})},
)
def export_ndjson(name: str) -> Response:
    from hma_framework.bank_io import export_lines

    runtime = _runtime_with_bank(name)
    return Response(
        stream_with_context(export_lines(runtime.store, name, "ndjson")),
        mimetype="application/x-ndjson",
    )
