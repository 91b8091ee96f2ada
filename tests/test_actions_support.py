"""Shared by the actions tests: a real loopback webhook receiver, API clients, helpers.

No tests here. The receiver is an ``http.server`` in a thread on 127.0.0.1 that records what
arrives and answers from a script; signatures are checked by the tests with the
``standardwebhooks`` library, never with the project's own signing code.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import attrs
import requests
from standardwebhooks.webhooks import Webhook

from hma_framework.registry import Registry, make_registry
from hma_framework.runtime import Runtime
from hma_framework.settings import ActionSettings, Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, run_jobs

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
OTHER_PDQ = "0f0f0f31f0b8a7f0b6c9f5dd29c81f0fc0c7c0c0dcc0c3c8c0b0a0c0f0e0d0c0"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def registry_with_webhook(*extra: ModuleType | object) -> Registry:
    """Every installed plugin (the built-in webhook handler among them) plus ``extra``."""
    registry = make_registry(strict=True, extra_plugins=extra)
    assert "webhook" in registry.action_handlers
    return registry


def quick_retries(settings: Settings, **changes: Any) -> Settings:
    """Retries at once (three of them), no jitter, short timeouts: fast tests."""
    actions = ActionSettings(
        retry_intervals_seconds=(0, 0, 0), retry_jitter_percent=0, webhook_timeout_seconds=2
    )
    return attrs.evolve(settings, actions=attrs.evolve(actions, **changes))


@attrs.frozen
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """The standardwebhooks library's verdict; raises if the signature is wrong."""
        return Webhook(secret).verify(self.body, self.headers, json_parse=bool(self.body))


class Receiver:
    """A webhook endpoint on loopback; ``script`` holds (status, headers) answers in order."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.delay = 0.0
        self.echo: str | None = None  # a request header to repeat in every answer's body
        self.on_receive: Callable[[Received], None] | None = None
        self._lock = threading.Lock()
        self.closed = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else the reply waits out a delayed ACK (40 ms)

            def _handle(self) -> None:
                if receiver.closed:  # a kept-alive connection to a receiver now down
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                with receiver._lock:
                    receiver.received.append(got)
                    status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                if receiver.on_receive is not None:
                    receiver.on_receive(got)
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = b'{"ok": true}' if status < 300 else b'{"error": "try later"}'
                if receiver.echo:
                    answer = json.dumps({"you sent": got.headers.get(receiver.echo)}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = do_GET = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        """Down: refuse new connections, and drop kept-alive ones at their next request."""
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class Api:
    """A client for the live server with one key."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = Tokens.header(token)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return requests.request(
            method,
            self.base + path,
            json=body,
            params=params or None,
            headers=self.headers,
            timeout=10,
        )

    def post(self, path: str, body: Any = None) -> requests.Response:
        return self.call("POST", path, body)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.call("PUT", path, body)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.call("GET", path, **params)

    def delete(self, path: str) -> requests.Response:
        return self.call("DELETE", path)

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.call(method, path, body, **params)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None


def bank_with(runtime: Runtime, name: str, signal: str = PDQ, **bank: Any) -> int:
    banks = Banks(runtime.store)
    banks.create_bank(name, **bank)
    return banks.add_member(name, NewMember(signals=(("pdq", signal),), tags=("member-tag",)))


def webhook_handler(
    api: Api, name: str, url: str, secrets: list[str], **config: Any
) -> dict[str, Any]:
    body = {"name": name, "type": "webhook", "config": {"url": url, "signing_secrets": secrets}}
    body["config"].update(config)
    result: dict[str, Any] = api.ok("POST", "/handlers", body)
    return result


def rule(
    api: Api, name: str, handler: str, must_have: Any = (), must_not_have: Any = (), **action: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "must_have": list(must_have),
        "must_not_have": list(must_not_have),
        "action": {"handler": handler, **action},
    }
    result: dict[str, Any] = api.ok("POST", "/rules", body)
    return result


def submit_hash(api: Api, content_id: str, signal: str = PDQ, fields: Any = ()) -> None:
    api.ok(
        "POST",
        "/submit/hash/",
        {
            "content_id": content_id,
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": signal,
            "additional_fields": list(fields),
        },
    )


def drain(worker: Runtime, done: Callable[[], bool], timeout: float = 15) -> None:
    """Run burst workers (whose scheduler enqueues due retries) until ``done()``."""
    deadline = time.monotonic() + timeout
    while True:
        run_jobs(worker)
        if done():
            return
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.1)
