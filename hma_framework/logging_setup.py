"""One log format for every process ``hma`` starts: text on a terminal, or JSON lines."""

from __future__ import annotations

import logging
import sys

from hma_framework.log_context import ContextFilter, JsonFormatter, TextFormatter
from hma_framework.settings import LOG_FORMATS
from hma_framework.web.log_redaction import install_redaction

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

# Libraries that narrate their own start-up or every job at INFO: keep only their warnings
# unless DEBUG asks for everything.
_CHATTY = ("faiss.loader", "alembic.runtime.plugins", "rq.worker", "rq.queue", "rq.cron")


def configure_logging(level: str, log_format: str = "text") -> None:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; choose one of {LOG_FORMATS}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    install_redaction(root)  # upload tokens and API keys are never logged
    root.setLevel(level)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(library_level(level))


def library_level(level: str) -> str:
    """The level for chatty libraries (RQ logs every job at INFO): DEBUG, or warnings only."""
    return level if level == "DEBUG" else "WARNING"
