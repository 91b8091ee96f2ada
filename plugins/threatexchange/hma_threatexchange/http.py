"""One HTTP session for every exchange client: a timeout on every call, retries that wait.

python-threatexchange's clients reach the network through ``requests``; some calls set no
timeout at all (ThreatExchange's ``get_json_from_url``), and urllib3's retry ignores how long
a server asks us to wait. :class:`ExchangeSession` is handed to (or replaces the session of)
each client: 429, 5xx and connection failures are retried with exponential backoff, waiting
at least what ``Retry-After`` says (capped by a setting), and every request carries the
configured timeout.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import attrs
import requests

from hma_framework.http_headers import parse_retry_after
from hma_framework.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_QUERY_SECRET = re.compile(r"((?:access_token|api_key|key|token)=)[^&\s\"]+", re.IGNORECASE)


class RedactQuerySecrets(logging.Filter):
    """Blanks credentials carried in URLs (ThreatExchange's ``access_token``) out of the
    lines urllib3 logs at DEBUG for every request, which quote the whole path and query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _QUERY_SECRET.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_request_logs() -> None:
    """Install :class:`RedactQuerySecrets` on urllib3's request logger (once)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
        logger.addFilter(RedactQuerySecrets())


redact_request_logs()


@attrs.frozen
class HttpPolicy:
    timeout_seconds: float = 30.0
    retries: int = 4
    backoff_seconds: float = 0.5
    max_retry_after_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPolicy:
        exchanges = settings.exchanges
        return cls(
            timeout_seconds=float(exchanges.http_timeout_seconds),
            retries=exchanges.http_retries,
            max_retry_after_seconds=float(exchanges.max_retry_after_seconds),
        )

    def wait_before(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based)."""
        backoff = self.backoff_seconds * (2**retry)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_retry_after_seconds))
        return backoff


class ExchangeSession(requests.Session):
    """A ``requests.Session`` with the policy's timeout and retries on every request."""

    def __init__(self, policy: HttpPolicy) -> None:
        super().__init__()
        self.policy = policy

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.policy.timeout_seconds)
        retry = 0
        while True:
            try:
                response = super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]
            except (requests.ConnectionError, requests.Timeout) as exc:
                if retry >= self.policy.retries:
                    raise
                wait = self.policy.wait_before(retry, None)
                log.info(
                    "exchange request failed (%s); retrying in %.1fs", type(exc).__name__, wait
                )
            else:
                if response.status_code not in RETRY_STATUSES or retry >= self.policy.retries:
                    return response
                wait = self.policy.wait_before(
                    retry, parse_retry_after(response.headers.get("Retry-After"))
                )
                log.info("exchange answered %s; retrying in %.1fs", response.status_code, wait)
                response.close()
            retry += 1
            time.sleep(wait)
