"""The built-in ``webhook`` action handler: a signed HTTP request to the platform's systems.

One request per attempt to a URL template (``{content_id}`` is substituted, URL-encoded),
signed per Standard Webhooks. The host is resolved and checked by the same
:class:`AddressGuard` as URL fetches (private addresses refused unless
``fetch.allowed_networks`` allows them) and the connection goes to exactly the checked
address, so a DNS answer that changes in between cannot redirect it. Redirects are not
followed: a 3xx is a failed attempt like any other non-2xx, except 410, which disables the
handler. Connections are kept alive between attempts to the same address.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError

from hma_framework.actions.backoff import parse_retry_after
from hma_framework.actions.outcome import DeliveryOutcome
from hma_framework.actions.signing import secret_key, signed_headers
from hma_framework.builtin.address_guard import AddressGuard
from hma_framework.errors import PermanentFetchError, TransientFetchError
from hma_framework.settings import Settings
from hma_framework.types import ActionHandlerRecord, ActionRequest

PLACEHOLDER = "{content_id}"
METHODS = ("POST", "PUT", "GET", "DELETE")
EVENT_TYPE = "hma.content.matched"
DEFAULT_TIMEOUT_SECONDS = 10.0
READ_LIMIT = 64 * 1024  # more than this of a response body and the connection is dropped
EXCERPT_CHARS = 300
_MAX_POOLS = 16
_RESERVED = {
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _url_template(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    sample = value.replace(PLACEHOLDER, "x")
    if "{" in sample or "}" in sample:
        raise ValueError(f"only {PLACEHOLDER} is substituted in url; no other braces")
    parts = urlsplit(sample)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an absolute http:// or https:// URL")
    try:
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError:
        raise ValueError("url has a port that is not a number from 0 to 65535") from None
    if parts.username or parts.password:
        raise ValueError("url must not carry credentials; send them in secret_headers")


def _method(value: str) -> str:
    return value.upper()


def _headers(_instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
    for name, header in value.items():
        if not _TOKEN.match(name):
            raise ValueError(f"{attribute.name}: {name!r} is not a valid header name")
        if name.lower() in _RESERVED:
            raise ValueError(f"{attribute.name}: {name!r} is set by the handler itself")
        if "\r" in header or "\n" in header:
            raise ValueError(f"{attribute.name}: the value of {name!r} contains a line break")


#: Secret header values are blanked out of every message by value, which is only safe for
#: values long enough not to occur by chance in ordinary text ("ab" would mangle messages and
#: so is never blanked): shorter ones are refused.
MIN_SECRET_HEADER_LENGTH = 8


def _secret_headers(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _headers(instance, attribute, value)
    for name, header in value.items():
        if len(header.strip()) < MIN_SECRET_HEADER_LENGTH:
            raise ValueError(
                f"{attribute.name}: the value of {name!r} must be at least "
                f"{MIN_SECRET_HEADER_LENGTH} characters (shorter values cannot be hidden in "
                "messages); put non-secret headers in headers"
            )


def _signing_secrets(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise ValueError("signing_secrets needs at least one whsec_ secret")
    for index, secret in enumerate(value):
        try:
            secret_key(secret)
        except ValueError as exc:
            raise ValueError(f"signing_secrets[{index}]: {exc}") from None


def _timeout(_instance: object, _attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0 < value <= 300:
        raise ValueError("timeout_seconds must be more than 0 and at most 300")


@attrs.frozen
class WebhookConfig:
    """A webhook endpoint. ``signing_secrets`` and ``secret_headers`` are write-only.

    Several signing secrets sign every request with each (rotation); ``secret_headers`` are
    sent like ``headers`` (an ``Authorization`` token, say) but never shown.
    """

    url: str = attrs.field(validator=_url_template)
    signing_secrets: tuple[str, ...] = attrs.field(validator=_signing_secrets)
    method: str = attrs.field(
        default="POST", converter=_method, validator=attrs.validators.in_(METHODS)
    )
    headers: dict[str, str] = attrs.field(factory=dict, validator=_headers)
    secret_headers: dict[str, str] = attrs.field(factory=dict, validator=_secret_headers)
    timeout_seconds: float | None = attrs.field(default=None, validator=_timeout)


def webhook_body(request: ActionRequest) -> dict[str, Any]:
    """The JSON a POST or PUT sends (Standard Webhooks' ``type`` + ``data`` shape)."""
    return {
        "type": EVENT_TYPE,
        "data": {
            "content_id": request.content_id,
            "content_type": request.content_type,
            "additional_fields": list(request.additional_fields),
            "matches": [attrs.asdict(m) for m in request.matches],
            "rules_fired": list(request.rules_fired),
            "params": dict(request.params),
        },
    }


def message_id(request: ActionRequest, body: dict[str, Any] | None = None) -> str:
    """The same for every attempt at one action, so receivers can drop duplicates.

    ``body`` is ``webhook_body(request)`` if the caller has it already.
    """
    body = webhook_body(request) if body is None else body
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "msg_" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _excerpt(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", "replace").split())
    return text[:EXCERPT_CHARS]


class WebhookHandler:
    """Performs webhook actions for one configured endpoint."""

    def __init__(
        self,
        config: WebhookConfig,
        guard: AddressGuard | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._config = config
        self._keys = [secret_key(secret) for secret in config.signing_secrets]
        self._guard = guard or AddressGuard()  # unbound: no private address at all
        self._timeout = urllib3.Timeout(total=config.timeout_seconds or timeout_seconds)
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def bind_settings(self, settings: Settings) -> WebhookHandler:
        guard = AddressGuard.from_setting(settings.fetch.allowed_networks)
        return WebhookHandler(self._config, guard, settings.actions.webhook_timeout_seconds)

    def _pool(self, scheme: str, address: str, port: int, host: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, address, port, host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if len(self._pools) >= _MAX_POOLS:
                    self._pools.clear()
                if scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        address, port, server_hostname=host, assert_hostname=host, maxsize=4
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(address, port, maxsize=4)
                self._pools[key] = pool
            return pool

    def _send(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {**headers, "Host": parts.netloc}
        failure: Exception | None = None
        for entry in self._guard.resolve(host, port)[:3]:
            pool = self._pool(parts.scheme, str(entry[4][0]), port, host)
            try:
                response = pool.urlopen(
                    self._config.method,
                    target,
                    body=body or None,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    timeout=self._timeout,
                )
            except ConnectTimeoutError as exc:  # refused or unreachable: try the next address
                failure = exc
                continue
            consumed = False
            try:
                data = response.read(READ_LIMIT)
                consumed = not response.read(1)
            finally:
                if not consumed:
                    response.close()
                response.release_conn()
            return response.status, response.headers.get("Retry-After", ""), data
        raise failure or TransientFetchError(f"no address of {host} answered")

    def perform(self, request: ActionRequest) -> DeliveryOutcome:
        url = self._config.url.replace(PLACEHOLDER, quote(request.content_id, safe=""))
        sends_body = self._config.method in ("POST", "PUT")
        document = webhook_body(request)
        body = json.dumps(document).encode() if sends_body else b""
        headers = {
            **self._config.headers,
            **self._config.secret_headers,
            "User-Agent": "hma-framework",
            **signed_headers(self._keys, message_id(request, document), int(time.time()), body),
        }
        if sends_body:
            headers["Content-Type"] = "application/json"
        host = urlsplit(url).netloc
        try:
            status, retry_after, data = self._send(url, headers, body)
        except PermanentFetchError as exc:  # a refused address: retrying cannot help
            return DeliveryOutcome(ok=False, retry=False, detail=str(exc))
        except (TransientFetchError, HTTPError, OSError) as exc:
            return DeliveryOutcome(ok=False, retry=True, detail=f"no answer from {host}: {exc}")
        excerpt = _excerpt(data)
        said = f"HTTP {status} from {host}" + (f": {excerpt}" if excerpt else "")
        if 200 <= status < 300:
            return DeliveryOutcome(ok=True, status_code=status, detail=said)
        if status == 410:
            return DeliveryOutcome(
                ok=False,
                status_code=status,
                disable_handler=True,
                detail=f"{said} (410 Gone: the receiver retired this webhook; handler disabled)",
            )
        return DeliveryOutcome(
            ok=False,
            retry=True,
            status_code=status,
            retry_after_seconds=parse_retry_after(retry_after),
            detail=said,
        )


def webhook_handler_record() -> ActionHandlerRecord:
    """The record ``hma_framework.builtin``'s ``hma_action_handlers`` hook yields."""
    return ActionHandlerRecord(
        name="webhook",
        config_class=WebhookConfig,
        factory=WebhookHandler,
        secret_fields=("signing_secrets", "secret_headers"),
        description="A signed (Standard Webhooks) HTTP request per action to a URL template.",
    )
