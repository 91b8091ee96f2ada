"""What a log line is about: the request that caused it and the content it concerns.

A request id (the caller's ``X-Request-ID`` when it is sane, or a new one) is bound when a
request starts, travels in the ``meta`` of every job the request enqueues, and is bound again
when a worker runs that job, so one id follows a submission from the API through its hash,
match and act jobs. Log records get ``request_id`` and ``content_id`` attributes from here;
the JSON format writes them, the text format shows them when set.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hma_request_id", default=None
)
_content_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hma_content_id", default=None
)

#: Job ``meta`` keys that carry the context into workers.
META_KEYS = ("request_id", "content_id")

# Ids are echoed in responses and written to logs: accept only what cannot forge a line.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    return secrets.token_hex(12)


def sane_request_id(candidate: str | None) -> str:
    """The caller's id when it is safe to log and echo; otherwise a fresh one."""
    if candidate and _SANE_ID.match(candidate):
        return candidate
    return new_request_id()


def bind(*, request_id: str | None = None, content_id: str | None = None) -> None:
    """Bind ids to the current context (a request, or a job in a worker)."""
    if request_id is not None:
        _request_id.set(request_id)
    if content_id is not None:
        _content_id.set(content_id[:255])


def clear() -> None:
    _request_id.set(None)
    _content_id.set(None)


def current() -> dict[str, str]:
    """The bound ids, for a job's ``meta``."""
    values = {"request_id": _request_id.get(), "content_id": _content_id.get()}
    return {key: value for key, value in values.items() if value}


@contextmanager
def bound_from(meta: Mapping[str, Any]) -> Iterator[None]:
    """Bind the ids a job carries while it runs, and forget them afterwards."""
    tokens = [
        (_request_id, _request_id.set(_str_or_none(meta.get("request_id")))),
        (_content_id, _content_id.set(_str_or_none(meta.get("content_id")))),
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``content_id`` (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.content_id = _content_id.get()
        return True


class TextFormatter(logging.Formatter):
    """The human-readable line, with the ids appended when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("request_id", "content_id")
            if (value := getattr(record, name, None))
        ]
        return f"{line} [{' '.join(ids)}]" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name in ("request_id", "content_id"):
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
