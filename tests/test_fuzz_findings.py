"""Regressions for what the schemathesis run (tests/test_fuzz_api.py) found.

Each test is one finding: the request the fuzzer sent and the answer it must get now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis import Redis

from hma_framework.embedded_redis import EmbeddedRedis
from hma_framework.testing import Tokens
from hma_framework.web.console.sessions import COOKIE_NAME, ConsoleSessions


def test_console_sessions_work_on_the_embedded_redis(tmp_path: Path) -> None:
    """Every console request with a cookie was a 500 under `hma serve`: the session check
    sent ``EXPIRE ... XX``, which the embedded Redis (6.2) refuses."""
    with EmbeddedRedis(tmp_path, persist=False) as server:
        redis = Redis.from_url(server.url)
        sessions = ConsoleSessions(redis, idle_seconds=60)
        assert sessions.get("no-such-session") is None
        created = sessions.create("key-id")
        found = sessions.get(created.session_id)
        assert found is not None and found.key_id == "key-id"
        sessions.end(created.session_id)
        assert sessions.get(created.session_id) is None
        assert not redis.keys("*")  # reading an ended session did not recreate it
        redis.close()


def test_console_page_with_an_unknown_session_cookie_asks_to_sign_in(client: Any) -> None:
    client.set_cookie(COOKIE_NAME, "made-up", path="/ui")
    answer = client.get("/ui/banks")
    assert answer.status_code == 302
    assert "/ui/login" in answer.headers["Location"]


def test_malformed_multipart_is_a_400_on_the_hma2_upload_routes(
    client: Any, tokens: Tokens
) -> None:
    """``POST /h/hash`` and ``POST /m/lookup`` with a body cut inside a part were 500s."""
    admin = Tokens.header(tokens.admin)
    assert client.post("/c/banks", json={"name": "FUZZ"}, headers=admin).status_code == 201
    boundary = "d8451c16a40a05580dd65960fd7879bf"
    body = f"--{boundary}\r\nti--{boundary}--\r\n".encode()
    for path in ("/h/hash", "/m/lookup", "/c/bank/FUZZ/content"):
        answer = client.post(
            path,
            data=body,
            headers={
                **admin,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        assert answer.status_code == 400, (path, answer.get_json())
        assert "message" in answer.get_json()


def test_an_id_past_the_largest_is_404_for_every_method(client: Any, tokens: Tokens) -> None:
    """``DELETE``/``PATCH /banks/<name>/members/9223372036854775808`` (and the HMA 2.0
    content routes) answered 405, a status those routes do not have; ``GET`` said 404."""
    admin = Tokens.header(tokens.admin)
    too_large = 2**63
    for method, path in (
        ("GET", f"/banks/b/members/{too_large}"),
        ("PATCH", f"/banks/b/members/{too_large}"),
        ("DELETE", f"/banks/b/members/{too_large}"),
        ("PUT", f"/c/bank/B/content/{too_large}"),
        ("DELETE", f"/c/bank/B/content/{too_large}"),
        ("POST", f"/deliveries/{too_large}/redeliver"),
    ):
        answer = client.open(path, method=method, json={}, headers=admin)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert "no id is as large as" in answer.get_json()["message"]
