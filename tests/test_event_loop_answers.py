"""Hash lookups are answered on the API worker's event loop; everything else in a thread.

Which requests qualify is decided from their headers and the app (the real app, before and
after its indexes are loaded). Then under gunicorn: lookups on a kept-alive connection, pipelined
lookups, and lookups between requests that go to threads all get their own right answers.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import requests

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, gunicorn_api
from hma_framework.web.gunicorn_worker import answered_at_once

BANKED = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
LOOKUP = f"/lookup?signal_type=pdq&signal={BANKED}"


def head(line: str, *headers: str) -> bytes:
    return ("\r\n".join([line, "Host: api", *headers]) + "\r\n\r\n").encode()


def test_only_body_less_gets_of_lookups_qualify_once_indexes_are_loaded(
    app: Any, runtime: Runtime
) -> None:
    lookup = head(f"GET {LOOKUP} HTTP/1.1")
    assert not answered_at_once(lookup, app)  # a lookup would wait for the indexes to load
    runtime.indexes.load()
    assert answered_at_once(lookup, app)
    assert answered_at_once(lookup + head(f"GET {LOOKUP} HTTP/1.1"), app)  # pipelined
    refused = [
        head(f"POST {LOOKUP} HTTP/1.1", "Content-Length: 2"),
        head("GET /banks HTTP/1.1"),
        head("GET /m/lookup?url=http://x HTTP/1.1"),
        head(f"GET {LOOKUP} HTTP/1.1", "content-length: 0"),
        head(f"GET {LOOKUP} HTTP/1.1", "Transfer-Encoding: chunked"),
        head(f"GET {LOOKUP} HTTP/1.1", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c"),
        head(f"GET {LOOKUP}"),  # not a request line gunicorn accepts
    ]
    assert [r for r in refused if answered_at_once(r, app)] == []
    assert not answered_at_once(lookup, object())  # an app that does not say


def read_response(stream: Any) -> tuple[int, bytes]:
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, stream.read(length)


@pytest.fixture
def served(runtime: Runtime) -> Any:
    banks = Banks(runtime.store)
    banks.create_bank("known")
    banks.add_member("known", NewMember(signals=(("pdq", BANKED),)))
    with gunicorn_api(runtime.settings) as (base, _):
        token = runtime.api_keys.create("platform", ["read", "submit"]).token
        yield base, Tokens.header(token)


def test_lookups_on_the_loop_and_requests_in_threads_share_a_connection(served: Any) -> None:
    base, headers = served
    with requests.Session() as session:
        session.headers.update(headers)
        for number in range(30):
            found = session.get(base + LOOKUP, timeout=10)
            assert found.status_code == 200
            assert [m["bank"] for m in found.json()["matches"]] == ["known"], found.text
            missed = session.get(f"{base}/lookup?signal_type=pdq&signal={number:064x}", timeout=10)
            assert missed.json()["matches"] == []
            if number % 10 == 0:  # a thread's request on the same kept-alive connection
                body = {
                    "content_id": f"c-{number}",
                    "content_type": "photo",
                    "signal_type": "pdq",
                    "signal_value": BANKED,
                }
                assert session.post(base + "/submit/hash/", json=body, timeout=10).ok
                assert session.get(base + "/banks/known", timeout=10).json()["name"] == "known"
        invalid = session.get(base + "/lookup?signal_type=pdq&signal=zz", timeout=10)
        assert invalid.status_code == 400
        assert "message" in invalid.json()


def test_pipelined_lookups_are_answered_in_order(served: Any) -> None:
    base, headers = served
    host, port = base.removeprefix("http://").split(":")
    auth = "".join(f"{name}: {value}" for name, value in headers.items())
    targets = [LOOKUP, f"/lookup?signal_type=pdq&signal={1:064x}", LOOKUP]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"".join(head(f"GET {t} HTTP/1.1", auth) for t in targets))
        stream = sock.makefile("rb")
        answers = [read_response(stream) for _ in targets]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [b'"known"' in body for _, body in answers] == [True, False, True]
