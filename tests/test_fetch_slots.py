"""Slow URLs cannot occupy every API thread: synchronous fetches are bounded per process."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import attrs
import pytest
import requests

from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks
from hma_framework.testing import Tokens, make_photo
from tests.http_fixtures import loopback_server, serve_bytes


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return attrs.evolve(settings, web=attrs.evolve(settings.web, max_concurrent_fetches=1))


def test_fetches_past_the_limit_get_503_while_other_requests_answer(
    live_server: str, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b")
    photo = make_photo(seed=4)
    arrived, gate = threading.Event(), threading.Event()

    def held_photo(handler: BaseHTTPRequestHandler) -> None:
        arrived.set()
        gate.wait(15)
        serve_bytes(photo, content_type="image/jpeg")(handler)

    headers = Tokens.header(tokens.admin)
    results: list[Any] = []
    with loopback_server() as server:
        slow_url = server.add("/slow.jpg", held_photo)
        lookup = {"content_type": "photo", "content_url": slow_url}

        def first_lookup() -> None:
            results.append(
                requests.post(f"{live_server}/lookup", json=lookup, headers=headers, timeout=30)
            )

        holder = threading.Thread(target=first_lookup)
        holder.start()
        try:
            assert arrived.wait(10), "the first fetch reached the slow server"
            busy = requests.post(f"{live_server}/lookup", json=lookup, headers=headers, timeout=5)
            assert busy.status_code == 503, busy.text
            assert busy.headers["Retry-After"] == "5" and "retry" in busy.json()["message"]
            member = requests.post(
                f"{live_server}/banks/b/members",
                json={"content_type": "photo", "content_url": slow_url},
                headers=headers,
                timeout=5,
            )
            assert member.status_code == 503 and member.headers["Retry-After"], member.text
            status = requests.get(f"{live_server}/status", timeout=5)
            assert status.status_code == 200
        finally:
            gate.set()
            holder.join(30)
        assert results and results[0].status_code == 200, results
        again = requests.post(f"{live_server}/lookup", json=lookup, headers=headers, timeout=30)
        assert again.status_code == 200, again.text  # the slot was given back
