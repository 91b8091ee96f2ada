"""The console's sessions, CSRF, scopes and pages, through Flask's test client.

The journey in a real browser is in ``test_console_browser.py``; these tests pin the rules
one by one on both databases.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import attrs
import pytest

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, make_photo
from hma_framework.web.console import CSP
from hma_framework.web.console.sessions import COOKIE_NAME

PDQ = "f" * 64
OTHER_PDQ = "0" * 64


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: Any, token: str) -> Any:
    form = client.get("/ui/login")
    return client.post(
        "/ui/login",
        data={"csrf_token": csrf_of(form.text), "api_key": token, "next": "/ui/banks"},
    )


def page_token(client: Any, path: str = "/ui/banks") -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return csrf_of(answer.text)


def test_pages_need_a_session_and_carry_a_strict_csp(client: Any) -> None:
    answer = client.get("/ui/matches?bank=x")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/ui/login?next=/ui/matches")
    login = client.get("/ui/login")
    assert login.status_code == 200
    assert login.headers["Content-Security-Policy"] == CSP
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert "<script" not in login.text
    # every field has a label
    for field_id in re.findall(r'<input id="([^"]+)"', login.text):
        assert f'for="{field_id}"' in login.text


def test_every_console_route_is_closed_without_a_session(app: Any, client: Any) -> None:
    open_ones = {"console.login", "console.login_submit", "console.static"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in open_ones:
            continue
        path = re.sub(
            r"<(?:int:)?[^>]+>", lambda m: "1" if "int:" in m.group(0) else "x", rule.rule
        )
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            answer = client.open(path, method=method)
            assert answer.status_code in (302, 401), (rule.rule, method, answer.status_code)


def test_sign_in_keeps_only_a_random_id_in_a_strict_cookie(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    answer = sign_in(client, tokens.admin)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/banks"
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith(COOKIE_NAME))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test
    # No cookie timer: the server's idle expiry (renewed per request) alone ends the session.
    assert "Max-Age" not in cookie and "Expires" not in cookie
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert tokens.admin not in cookie and session_id not in tokens.admin
    stored = [runtime.redis.hgetall(k) for k in runtime.redis.keys("hma:console:session:*")]
    assert len(stored) == 1
    assert tokens.admin.encode() not in b"".join(stored[0].values())
    idle = runtime.settings.console.session_idle_minutes * 60
    (name,) = runtime.redis.keys("hma:console:session:*")
    assert 0 < runtime.redis.ttl(name) <= idle
    assert client.get("/ui/banks").status_code == 200


def test_cookie_is_secure_over_tls(client: Any, tokens: Tokens) -> None:
    form = client.get("/ui/login", base_url="https://localhost")
    answer = client.post(
        "/ui/login",
        base_url="https://localhost",
        data={"csrf_token": csrf_of(form.text), "api_key": tokens.read},
    )
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith(COOKIE_NAME))
    assert "Secure" in cookie


def test_sign_in_refuses_a_forged_form_and_a_wrong_key(client: Any, tokens: Tokens) -> None:
    client.get("/ui/login")
    forged = client.post("/ui/login", data={"csrf_token": "guess", "api_key": tokens.admin})
    assert forged.status_code == 403
    wrong = sign_in(client, "hma_nope_nope")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert "hma_nope_nope" not in wrong.text
    submit_only = sign_in(client, tokens.submit)
    assert submit_only.status_code == 403
    assert client.get("/ui/banks").status_code == 302


def test_open_redirects_are_refused(client: Any, tokens: Tokens) -> None:
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"csrf_token": csrf_of(form.text), "api_key": tokens.read, "next": "//evil.test/"},
    )
    assert answer.headers["Location"] == "/ui/"


def test_a_post_without_the_session_token_is_refused(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    sign_in(client, tokens.admin)
    refused = client.post("/ui/banks", data={"name": "forged"})
    assert refused.status_code == 403
    wrong = client.post("/ui/banks", data={"name": "forged", "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    made = client.post("/ui/banks", data={"name": "real", "csrf_token": page_token(client)})
    assert made.status_code == 303 and made.headers["Location"] == "/ui/banks/real"
    listing = client.get("/ui/banks").text
    assert "forged" not in listing and ">real</a>" in listing


def test_sign_out_ends_the_session_on_the_server(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    sign_in(client, tokens.read)
    session_id = client.get_cookie(COOKIE_NAME, path="/ui").value
    out = client.post("/ui/logout", data={"csrf_token": page_token(client)})
    assert out.status_code == 303
    assert runtime.redis.keys("hma:console:session:*") == []
    client.set_cookie(COOKIE_NAME, session_id, path="/ui")  # a stolen copy of the cookie
    assert client.get("/ui/banks").status_code == 302


def test_a_revoked_key_ends_its_sessions(client: Any, runtime: Runtime, tokens: Tokens) -> None:
    sign_in(client, tokens.read)
    assert client.get("/ui/banks").status_code == 200
    key_id = runtime.authenticate(tokens.read).key_id  # type: ignore[union-attr]
    runtime.api_keys.revoke(key_id)
    assert client.get("/ui/banks").status_code == 302


def test_a_session_is_not_an_api_credential_and_a_key_is_not_a_session(
    client: Any, tokens: Tokens
) -> None:
    sign_in(client, tokens.admin)
    assert client.get("/banks").status_code == 401
    bearer = client.application.test_client()
    assert bearer.get("/ui/banks", headers=Tokens.header(tokens.admin)).status_code == 302


def test_a_read_key_sees_no_admin_forms_and_cannot_post_them(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b1")
    sign_in(client, tokens.read)
    listing = client.get("/ui/banks")
    assert "New bank" not in listing.text and "Off: enable" not in listing.text
    token = csrf_of(listing.text)
    refused = client.post("/ui/banks", data={"name": "x", "csrf_token": token})
    assert refused.status_code == 403 and "admin" in refused.text
    detail = client.get("/ui/banks/b1").text
    assert "Add a member" not in detail


def test_members_are_added_searched_and_switched(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b1")
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/banks/b1")
    added = client.post(
        "/ui/banks/b1/members",
        data={"csrf_token": token, "signal_type": "pdq", "signal_value": PDQ, "tags": "cats, x"},
    )
    assert added.status_code == 303, added.text
    bad = client.post(
        "/ui/banks/b1/members",
        data={"csrf_token": token, "signal_type": "pdq", "signal_value": "zz"},
    )
    assert bad.status_code == 400 and "Not added" in bad.text
    upload = client.post(
        "/ui/banks/b1/members",
        data={"csrf_token": token, "file": (_photo_file(), "p.jpg"), "tags": "photo"},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 303, upload.text
    by_hash = client.get(f"/ui/banks/b1?q={PDQ}").text
    assert PDQ in by_hash and "cats, x" in by_hash
    by_tag = client.get("/ui/banks/b1?q=tag:photo").text
    assert "photo" in by_tag and PDQ not in by_tag
    assert "No members" in client.get(f"/ui/banks/b1?q={OTHER_PDQ}").text
    member_id = int(added.headers["Location"].rsplit("=", 1)[1])
    assert f">{member_id}</td>" in client.get(f"/ui/banks/b1?q={member_id}").text
    off = client.post(
        f"/ui/banks/b1/members/{member_id}/enabled", data={"csrf_token": token, "enabled": "false"}
    )
    assert off.status_code == 303
    assert "Off: enable" in client.get(f"/ui/banks/b1?q={member_id}").text
    client.post("/ui/banks/b1/enabled", data={"csrf_token": token, "enabled": "false"})
    assert "Off: enable" in client.get("/ui/banks").text


def _photo_file() -> Any:
    import io

    return io.BytesIO(make_photo(seed=3))


def test_lookup_by_hash_and_by_image_lists_every_match(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("b1")
    banks.add_member("b1", NewMember(signals=(("pdq", PDQ),)))
    sign_in(client, tokens.read)
    token = page_token(client, "/ui/lookup")
    found = client.post(
        "/ui/lookup", data={"csrf_token": token, "signal_type": "pdq", "signal": PDQ}
    )
    assert found.status_code == 200
    assert found.text.count('class="match"') == 1 and ">b1<" in found.text
    none = client.post(
        "/ui/lookup", data={"csrf_token": token, "signal_type": "pdq", "signal": OTHER_PDQ}
    )
    assert "No match in any bank" in none.text
    invalid = client.post("/ui/lookup", data={"csrf_token": token, "signal_type": "pdq"})
    assert invalid.status_code == 400
    image = client.post(
        "/ui/lookup",
        data={"csrf_token": token, "file": (_photo_file(), "p.jpg")},
        content_type="multipart/form-data",
    )
    assert image.status_code == 200 and "<img" not in image.text
    assert "Signals" in image.text and "pdq" in image.text


@pytest.fixture
def retaining_settings(settings: Any) -> Any:
    return attrs.evolve(settings, pipeline=attrs.evolve(settings.pipeline, retain_media=True))


def test_retained_media_is_veiled_and_previews_can_be_turned_off(
    retaining_settings: Any, registry: Any, tokens: Tokens, runtime: Runtime
) -> None:
    from hma_framework.runtime import build_runtime
    from hma_framework.testing import run_jobs
    from hma_framework.web.app import create_app

    for previews in (True, False):
        settings = attrs.evolve(
            retaining_settings,
            console=attrs.evolve(retaining_settings.console, media_previews=previews),
        )
        rt = build_runtime(settings, registry=registry)
        try:
            client = create_app(rt).test_client()
            content_id = f"c-{previews}"
            photo = base64.b64encode(make_photo(seed=3)).decode()
            sent = client.post(
                "/submit/bytes/",
                json={"content_id": content_id, "content_type": "photo", "content_bytes": photo},
                headers=Tokens.header(tokens.submit),
            )
            assert sent.status_code in (200, 201, 202), sent.text
            run_jobs(rt)
            sign_in(client, tokens.read)
            html = client.get(f"/ui/content?content_id={content_id}").text
            media = client.get(f"/ui/content/media?content_id={content_id}")
            if previews:
                images = re.findall(r"<img[^>]*>", html)
                assert len(images) == 1 and 'class="veiled"' in images[0]
                assert 'type="checkbox" id="reveal"' in html
                assert media.status_code == 200 and media.mimetype == "image/jpeg"
            else:
                assert "<img" not in html
                assert media.status_code == 404
        finally:
            rt.close()


def test_overview_and_matches_show_the_records(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    sign_in(client, tokens.read)
    overview = client.get("/ui/")
    assert overview.status_code == 200
    assert 'data-count="matches-day">0<' in overview.text
    for name in ("hash", "match", "action"):
        assert name in overview.text
    assert "No matches." in client.get("/ui/matches?period=day&bank=nope").text
    missing = client.get("/ui/content?content_id=nothing-here")
    assert missing.status_code == 404 and "No content with id" in missing.text


def test_idle_sessions_expire_and_each_request_renews_the_idle_time(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    sign_in(client, tokens.read)
    (name,) = runtime.redis.keys("hma:console:session:*")
    idle = runtime.settings.console.session_idle_minutes * 60
    runtime.redis.expire(name, 5)  # as if the analyst had been away for most of the idle time
    assert client.get("/ui/banks").status_code == 200
    assert runtime.redis.ttl(name) > idle - 5  # the request pushed the expiry back
    runtime.redis.pexpire(name, 1)  # the idle time runs out
    time.sleep(0.05)
    assert client.get("/ui/banks").status_code == 302


def test_lookup_by_url_fetches_under_the_apis_rules(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    from hma_framework.media_hashing import bytes_file, compute_signals
    from tests.http_fixtures import loopback_server, serve_bytes

    photo = make_photo(seed=8)
    with bytes_file(runtime, photo) as path:
        (signal,) = compute_signals(runtime, "photo", path, alternates=False)
    banks = Banks(runtime.store)
    banks.create_bank("b1")
    banks.add_member("b1", NewMember(signals=((signal.signal_type, signal.value),)))
    sign_in(client, tokens.read)
    token = page_token(client, "/ui/lookup")
    with loopback_server() as server:
        url = server.add("/p.jpg", serve_bytes(photo, content_type="image/jpeg"))
        found = client.post("/ui/lookup", data={"csrf_token": token, "content_url": url})
        assert found.status_code == 200, found.text
        assert found.text.count('class="match"') == 1 and signal.value in found.text
        missing = client.post(
            "/ui/lookup", data={"csrf_token": token, "content_url": server.url("/gone.jpg")}
        )
        assert missing.status_code in (400, 502) and "Cannot look up that URL" in missing.text
    private = client.post(
        "/ui/lookup", data={"csrf_token": token, "content_url": "http://10.1.2.3/x.jpg"}
    )
    assert private.status_code == 400 and "Cannot look up that URL" in private.text
    secret = client.post(
        "/ui/lookup",
        data={"csrf_token": token, "content_url": "http://u:s3cr3t-pw@example.org/x"},
    )
    # a password long enough that the page's random CSRF token cannot contain it by chance
    assert secret.status_code == 400 and "s3cr3t-pw" not in secret.text
