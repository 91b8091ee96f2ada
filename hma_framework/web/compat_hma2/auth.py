"""Credentials for clients that send none: HMA 2.0's clients call with a bare base URL.

Two options, both off by default and both limited to the compatibility routes:

- ``trusted_networks``: requests whose peer address is in one of these CIDRs act with
  ``trusted_scopes``. Anyone who can send from such an address has those scopes, so keep the
  networks narrow (the client's host or pod network) and the scopes minimal (``read`` to
  look up; ``admin`` only if the client curates banks). Behind a proxy the peer is the proxy.
- ``basic_auth``: an API key sent as the password of HTTP Basic auth
  (``https://hma:<key>@host/``), for clients that accept credentials only in their base URL.
  The key then sits in the client's configuration and may reach its logs; use TLS.

A Bearer key keeps working on every route, and a wrong Basic password is a 401, never a
fallback to the network rule.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request

from hma_framework.settings import Hma2CompatSettings
from hma_framework.store.api_keys import ApiKey
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
_COMPAT_ATTR = "_hma2_compat"


def compat_view(scope: str) -> Callable[[F], F]:
    """Declare a compatibility view's scope and let the keyless options reach it."""

    def mark(view: F) -> F:
        setattr(view, _COMPAT_ATTR, True)
        return requires_scope(scope)(view)

    return mark


def _basic_password() -> str | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "malformed Basic credentials") from None
    return decoded.partition(":")[2] or None


def _trusted_network(settings: Hma2CompatSettings) -> str | None:
    try:
        peer = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return None
    for network in settings.trusted_networks:
        if peer in ipaddress.ip_network(network):
            return network
    return None


def keyless_key(view: Any) -> ApiKey | None:
    """The key a request without a Bearer key acts with, or None (then it gets a 401)."""
    if not getattr(view, _COMPAT_ATTR, False):
        return None
    runtime = current_app.extensions["hma"]
    settings: Hma2CompatSettings = runtime.settings.compat_hma2
    password = _basic_password() if settings.basic_auth else None
    if password is not None:
        key: ApiKey | None = runtime.authenticate(password)
        if key is None:
            raise ApiError(401, "invalid or revoked API key")
        return key
    network = _trusted_network(settings)
    if network is None:
        return None
    return ApiKey(
        key_id="trusted-network",
        name=f"trusted network {network}",
        scopes=settings.trusted_scopes,
        created_at=dt.datetime.now(dt.UTC),
    )


def install_keyless_auth(app: Flask) -> None:
    app.extensions["hma_keyless_auth"] = keyless_key
