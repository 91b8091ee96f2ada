"""One log format for every process ``hma`` starts."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    from hma_framework.web.log_redaction import install_redaction

    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger().setLevel(level)
    install_redaction(logging.getLogger())  # upload tokens and API keys never logged
    # Libraries that narrate their own start-up at INFO: keep only their warnings.
    for noisy in ("faiss.loader", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
