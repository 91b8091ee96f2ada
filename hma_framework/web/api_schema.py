"""What each view accepts and answers, declared next to it and read by ``/openapi.json``.

A view says what it takes and returns with :func:`operation`; the schemas are plain JSON
Schema (2020-12, the dialect OpenAPI 3.1 uses) built with the small helpers below, so the
spec is generated from the code it describes: a route added without a declaration fails the
route-coverage test, and a response that stops matching its declaration fails every test
that produced it (``hma_framework.testing`` validates the test client's answers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

Schema = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
_OPERATION_ATTR = "_hma_openapi"

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
ANY: Schema = {}  # any JSON value: plugin-defined configuration and free-form metadata
OBJ: Schema = {"type": "object"}  # an object whose keys depend on plugins or configuration
ERROR: Schema = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null."""
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(optional: Mapping[str, Schema] | None = None, /, **required: Schema) -> Schema:
    """An object with the keyword properties always present and ``optional`` ones maybe.

    Other properties are allowed: an answer may grow a field without breaking clients, but
    losing or retyping a declared one fails validation.
    """
    properties = {**required, **(optional or {})}
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def string_map(values: Schema) -> Schema:
    """An object keyed by names (banks, signal types) whose values are ``values``."""
    return {"type": "object", "additionalProperties": values}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


@attrs.frozen
class Media:
    """A body of another media type than JSON (an HTML page, NDJSON, raw bytes)."""

    media_type: str
    schema: Schema = attrs.field(factory=dict)


Body = Schema | Media | None


@attrs.frozen
class Operation:
    """One method of one route: what it is for, what it takes, what it answers."""

    summary: str
    request: Body
    query: Mapping[str, Schema]
    responses: Mapping[int, Body]
    request_required: bool
    #: The scope a public view checks itself (``/metrics``: a key, or an allowed network).
    own_scope: str | None = None


def operation(
    summary: str,
    *,
    responses: Mapping[int, Body],
    request: Body = None,
    query: Mapping[str, Schema] | None = None,
    request_required: bool = True,
    own_scope: str | None = None,
) -> Callable[[F], F]:
    """Declare a view's contract for the OpenAPI document.

    ``responses`` maps each status the view itself answers to its body (a JSON schema, a
    :class:`Media`, or None for no body). The errors any route can give (``{"message"}``
    with 400, 401/403 for keyed routes, 404, 413, 503...) are added by the spec builder.
    """
    op = Operation(
        summary, request, dict(query or {}), dict(responses), request_required, own_scope
    )

    def mark(view: F) -> F:
        setattr(view, _OPERATION_ATTR, op)
        return view

    return mark


def operation_of(view: Any) -> Operation | None:
    op: Operation | None = getattr(view, _OPERATION_ATTR, None)
    return op


def errors(*statuses: int) -> dict[int, Body]:
    """``{"message"}`` answers for ``statuses`` (e.g. a 409 a view raises)."""
    return dict.fromkeys(statuses, ERROR)


HTML = Media("text/html")
#: A console form post (its fields, CSRF token included, are the page's).
FORM = Media("application/x-www-form-urlencoded", {"type": "object"})


def html_page(*extra: int) -> dict[int, Body]:
    """A console page: HTML, a redirect (to the login page or after a form; Flask gives it a
    short HTML body), or an error page."""
    return {200: HTML, 302: HTML, 303: HTML, **dict.fromkeys(extra, HTML)}
