"""HMA 2.0 compatibility: the keyless options, each limited to the compatibility routes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens
from hma_framework.web.app import create_app


def _app(settings: Settings, **compat: Any) -> Iterator[tuple[Any, Runtime]]:
    evolved = attrs.evolve(settings, compat_hma2=attrs.evolve(settings.compat_hma2, **compat))
    runtime = build_runtime(evolved)
    try:
        yield create_app(runtime).test_client(), runtime
    finally:
        runtime.close()


@pytest.fixture
def trusted(settings: Settings, runtime: Runtime) -> Iterator[tuple[Any, Runtime]]:
    yield from _app(settings, trusted_networks=("127.0.0.0/8",), trusted_scopes=("read",))


@pytest.fixture
def basic(settings: Settings, runtime: Runtime) -> Iterator[tuple[Any, Runtime]]:
    yield from _app(settings, basic_auth=True)


def _basic(password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"hma:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def test_keyless_requests_are_refused_by_default(client: Any, tokens: Tokens) -> None:
    assert client.get("/c/banks").status_code == 401
    assert client.get("/c/banks", headers=_basic(tokens.admin)).status_code == 401
    assert client.get("/c/banks", headers=Tokens.header(tokens.read)).status_code == 200


def test_trusted_network_acts_with_its_scopes_on_compat_routes_only(
    trusted: tuple[Any, Runtime], tokens: Tokens
) -> None:
    client, _ = trusted
    assert client.get("/c/banks").status_code == 200
    lookup = client.get("/m/raw_lookup?signal_type=pdq&signal=" + "0" * 64)
    assert lookup.status_code == 200
    refused = client.post("/c/banks", json={"name": "X"})
    assert refused.status_code == 403 and "'admin' scope" in refused.get_json()["message"]
    # This project's own routes still want a key.
    assert client.get("/banks").status_code == 401
    # Another address is not trusted.
    outside = client.get("/c/banks", environ_overrides={"REMOTE_ADDR": "10.1.2.3"})
    assert outside.status_code == 401
    # A Bearer key still decides when one is sent.
    created = client.post("/c/banks", json={"name": "X"}, headers=Tokens.header(tokens.admin))
    assert created.status_code == 201
    wrong = client.get("/c/banks", headers=Tokens.header("hma_nope_nope"))
    assert wrong.status_code == 401


def test_api_key_as_basic_password(basic: tuple[Any, Runtime], tokens: Tokens) -> None:
    client, _ = basic
    assert client.get("/c/banks", headers=_basic(tokens.read)).status_code == 200
    assert (
        client.post("/c/banks", json={"name": "B"}, headers=_basic(tokens.read)).status_code == 403
    )
    assert (
        client.post("/c/banks", json={"name": "B"}, headers=_basic(tokens.admin)).status_code == 201
    )
    wrong = client.get("/c/banks", headers=_basic("hma_nope_nope"))
    assert wrong.status_code == 401 and wrong.get_json() == {
        "message": "invalid or revoked API key"
    }
    malformed = client.get("/c/banks", headers={"Authorization": "Basic !!!"})
    assert malformed.status_code == 401
    assert client.get("/c/banks").status_code == 401
    # Only the compatibility routes take Basic credentials.
    assert client.get("/banks", headers=_basic(tokens.admin)).status_code == 401


def test_settings_reject_bad_networks_and_scopes() -> None:
    from hma_framework.settings import SettingsError, load_settings

    for env in (
        {"HMA_COMPAT_HMA2_TRUSTED_NETWORKS": "10.0.0.1/8"},
        {"HMA_COMPAT_HMA2_TRUSTED_SCOPES": "read,root"},
    ):
        with pytest.raises(SettingsError, match="compat_hma2"):
            load_settings(environ=env)
