"""The web skeleton: keys and scopes on every route, JSON errors, health checks."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Blueprint

from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.testing import Tokens
from hma_framework.web.app import create_app
from hma_framework.web.auth import requires_scope


def test_health_checks_need_no_key(client: Any) -> None:
    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/status/ready")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {
        "database": True,
        "schema": True,
        "redis": True,
        "index": True,
    }
    assert ready.get_json()["index"] == {
        "loaded": True,
        "seq": 0,
        "latest_seq": 0,
        "lag": 0,
        "refreshed_seconds_ago": ready.get_json()["index"]["refreshed_seconds_ago"],
    }


def test_readiness_is_503_while_this_process_loads_its_index(runtime: Runtime) -> None:
    client = create_app(runtime).test_client()
    with runtime.indexes._lock:  # a load that has not finished (a large index, say)
        loading = client.get("/status/ready")
    assert loading.status_code == 503, loading.get_json()
    assert loading.get_json()["checks"]["index"] is False
    assert loading.get_json()["message"] == "not ready: index: still loading in this process"
    deadline = time.monotonic() + 30
    while (ready := client.get("/status/ready")).status_code != 200:
        assert time.monotonic() < deadline, ready.get_json()
        time.sleep(0.05)
    assert ready.get_json()["index"]["loaded"] is True


def test_readiness_shows_how_far_the_index_lags_the_change_log(
    runtime: Runtime, client: Any
) -> None:
    from hma_framework.store.banks import Banks, NewMember

    assert client.get("/status/ready").status_code == 200  # loaded at seq 0
    banks = Banks(runtime.store)
    banks.create_bank("lagging")
    banks.add_members("lagging", [NewMember(signals=(("pdq", "f" * 64),))])
    state = client.get("/status/ready").get_json()["index"]
    assert state["latest_seq"] >= 1
    assert state["lag"] == state["latest_seq"] - state["seq"] >= 1  # readiness reads, no refresh
    runtime.indexes.refresh(force=True)  # what the next lookup does
    assert client.get("/status/ready").get_json()["index"]["lag"] == 0


def test_missing_key_is_401(client: Any) -> None:
    response = client.get("/plugins")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.get_json()["message"]


def test_malformed_and_unknown_keys_are_401(client: Any, tokens: Tokens) -> None:
    for header in ("Basic abc", "Bearer", f"Token {tokens.read}", "Bearer hma_nope_nope"):
        response = client.get("/plugins", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.get_json()["message"]


def test_key_with_the_scope_is_allowed_and_admin_holds_every_scope(
    client: Any, tokens: Tokens
) -> None:
    for token in (tokens.read, tokens.admin):
        response = client.get("/plugins", headers=Tokens.header(token))
        assert response.status_code == 200
        assert "pdq" in response.get_json()["signal_types"]


def test_key_without_the_scope_is_403(client: Any, tokens: Tokens) -> None:
    response = client.get("/plugins", headers=Tokens.header(tokens.submit))
    assert response.status_code == 403
    assert response.get_json() == {"message": "this API key lacks the 'read' scope"}


def test_revoked_key_is_401_at_once(client: Any, tokens: Tokens, runtime: Runtime) -> None:
    assert client.get("/plugins", headers=Tokens.header(tokens.read)).status_code == 200
    key_id = tokens.read.split("_")[1]
    assert runtime.api_keys.revoke(key_id)
    response = client.get("/plugins", headers=Tokens.header(tokens.read))
    assert response.status_code == 401
    assert response.get_json() == {"message": "invalid or revoked API key"}


def test_errors_are_json(client: Any, tokens: Tokens) -> None:
    missing = client.get("/no/such/route", headers=Tokens.header(tokens.admin))
    assert missing.status_code == 404 and missing.get_json()["message"]
    wrong_method = client.post("/health")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["message"]


def test_body_over_the_limit_is_413(settings: Settings) -> None:
    import attrs

    small = attrs.evolve(settings, web=attrs.evolve(settings.web, max_body_bytes=2048))
    runtime = build_runtime(small)
    migrate.upgrade(runtime.store)
    try:
        blueprint = Blueprint("echo", __name__)

        @blueprint.post("/echo")
        @requires_scope("submit")
        def echo() -> dict[str, int]:
            from flask import request

            return {"size": len(request.get_data())}

        app = create_app(runtime, extra_blueprints=[blueprint])
        token = runtime.api_keys.create("t", ["submit"]).token
        client = app.test_client()
        ok = client.post("/echo", data=b"x" * 100, headers=Tokens.header(token))
        assert ok.status_code == 200
        too_big = client.post("/echo", data=b"x" * 4096, headers=Tokens.header(token))
        assert too_big.status_code == 413
        assert "2048" in too_big.get_json()["message"]
    finally:
        runtime.close()


def test_a_view_without_a_declared_scope_stops_startup(runtime: Runtime) -> None:
    forgetful = Blueprint("forgetful", __name__)

    @forgetful.get("/open")
    def open_view() -> str:
        return "anyone"

    with pytest.raises(RuntimeError, match=r"forgetful.open_view"):
        create_app(runtime, extra_blueprints=[forgetful])


def test_readiness_is_503_when_redis_is_down(settings: Settings) -> None:
    import attrs

    unreachable = attrs.evolve(settings, redis_url="redis://127.0.0.1:1/0")
    runtime = build_runtime(unreachable)
    migrate.upgrade(runtime.store)
    try:
        response = create_app(runtime).test_client().get("/status/ready")
        assert response.status_code == 503
        body = response.get_json()
        assert body["checks"]["redis"] is False and body["checks"]["database"] is True
        assert body["message"].startswith("not ready: redis:")
        assert create_app(runtime).test_client().get("/health").status_code == 200
    finally:
        runtime.close()


def test_readiness_is_503_before_migrations(settings: Settings) -> None:
    runtime = build_runtime(settings)
    try:
        response = create_app(runtime).test_client().get("/status/ready")
        assert response.status_code == 503
        assert "hma db upgrade" in response.get_json()["message"]
    finally:
        runtime.close()
