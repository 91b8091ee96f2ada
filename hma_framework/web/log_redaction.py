"""Credentials never reach a log line: upload-URL tokens and Authorization headers redacted.

An upload URL's token is the credential for its ``PUT`` (no API key is needed), so an access
log that records request lines would hand uploads to anyone who can read the logs. Two
layers: a ``logging.Filter`` on every handler ``configure_logging`` sets up (whatever logger
the line comes from: werkzeug, gunicorn's error log, the app), and a gunicorn logger class
whose access-log atoms are redacted before they are formatted.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

REDACTED = "[redacted]"
_UPLOAD_TOKEN = re.compile(r"(/upload/)[^\s/?#\"']+")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"']+")


def redact(text: str) -> str:
    """``text`` with upload tokens and bearer keys replaced by ``[redacted]``."""
    return _BEARER.sub(rf"\g<1>{REDACTED}", _UPLOAD_TOKEN.sub(rf"\g<1>{REDACTED}", text))


class RedactingFilter(logging.Filter):
    """Formats the record's message once, redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redaction(logger: logging.Logger) -> None:
    """Add the filter to each of ``logger``'s handlers (handler filters see every record)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger with redacted access-log atoms and filtered error/access handlers.

    Selected with ``--logger-class hma_framework.web.log_redaction.RedactingGunicornLogger``.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        install_redaction(self.error_log)
        install_redaction(self.access_log)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact(value)
        return atoms
