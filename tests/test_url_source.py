"""The built-in URL content source, against a real HTTP server on the loopback interface.

Every test runs with connections outside loopback turned into failures: refusals must happen
before a packet is sent, and the machines running these tests may forbid outside traffic.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import os
import socket
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

import hma_framework.builtin
from hma_framework.builtin.address_guard import (
    AddressGuard,
    AddressRefusedError,
    AddrInfo,
    non_public_reason,
)
from hma_framework.builtin.url_source import (
    TransientStatusError,
    UrlContentSource,
    make_url_source,
    parse_retry_after,
)
from hma_framework.errors import PermanentFetchError, TransientFetchError
from hma_framework.registry import make_registry
from hma_framework.settings import FetchSettings, Settings
from hma_framework.types import FetchedMedia
from tests.http_fixtures import (
    LoopbackServer,
    closed_port,
    drop_after,
    loopback_server,
    only_loopback_connections,
    redirect_to,
    self_signed_tls,
    serve_bytes,
    serve_chunked,
    slow_body,
    slow_headers,
)


def fetch_settings(**changes: Any) -> FetchSettings:
    return FetchSettings(**{"allowed_networks": ("127.0.0.1/32",), "timeout_seconds": 5, **changes})


def make_source(**changes: Any) -> UrlContentSource:
    return make_url_source(Settings(fetch=fetch_settings(**changes)))


def fetch(source: UrlContentSource, url: str) -> tuple[bytes, FetchedMedia]:
    destination = io.BytesIO()
    media = source.fetch(url, destination)
    return destination.getvalue(), media


class FixedResolver:
    """Answers every name with the same addresses and records the names it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[AddrInfo]:
        self.asked.append(host)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in self.addresses
        ]


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return only_loopback_connections(monkeypatch)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with loopback_server() as running:
        yield running


# --- success --------------------------------------------------------------------------------


def test_fetches_the_body_and_its_media_type(server: LoopbackServer) -> None:
    body = os.urandom(300_000)
    url = server.add("/photo.jpg", serve_bytes(body, content_type="image/JPEG; charset=binary"))

    data, media = fetch(make_source(), url)

    assert data == body
    assert media == FetchedMedia(size=len(body), media_type="image/jpeg")
    (request,) = server.requests
    assert request.headers["User-Agent"].startswith("hma-framework/")
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"


def test_fetches_chunked_and_close_delimited_bodies(server: LoopbackServer) -> None:
    chunks = [os.urandom(1000) for _ in range(20)]
    chunked = server.add("/chunked", serve_chunked(chunks, content_type="image/png"))
    delimited = server.add("/delimited", serve_bytes(b"".join(chunks), content_length=False))

    assert fetch(make_source(), chunked) == (b"".join(chunks), FetchedMedia(20_000, "image/png"))
    data, media = fetch(make_source(), delimited)
    assert data == b"".join(chunks)
    assert media.media_type == "application/octet-stream"


def test_media_type_is_none_without_content_type(server: LoopbackServer) -> None:
    url = server.add("/bare", serve_bytes(b"abc", headers={"Content-Type": ""}))
    assert fetch(make_source(), url)[1] == FetchedMedia(size=3, media_type=None)


def test_spaces_and_non_ascii_in_paths_are_percent_encoded(server: LoopbackServer) -> None:
    server.add("/caf%C3%A9%201.jpg", serve_bytes(b"jpeg"))
    assert fetch(make_source(), server.url("/café 1.jpg?size=large"))[0] == b"jpeg"
    assert server.requests[0].path == "/caf%C3%A9%201.jpg?size=large"


def test_a_gzip_encoded_body_is_decoded(server: LoopbackServer) -> None:
    body = os.urandom(5000)
    url = server.add("/gz", serve_bytes(gzip.compress(body), headers={"Content-Encoding": "gzip"}))
    assert fetch(make_source(), url)[0] == body
    assert server.requests[0].headers["Accept-Encoding"] == "identity"


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_permanent(server: LoopbackServer, status: int) -> None:
    url = server.add("/gone", serve_bytes(b"no", status=status))
    with pytest.raises(PermanentFetchError, match=f"answered HTTP {status}"):
        fetch(make_source(), url)


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_server_errors_and_timeouts_are_transient(server: LoopbackServer, status: int) -> None:
    url = server.add("/busy", serve_bytes(b"later", status=status))
    with pytest.raises(TransientStatusError, match=f"answered HTTP {status}") as caught:
        fetch(make_source(), url)
    assert caught.value.status == status
    assert caught.value.retry_after is None


def test_429_carries_retry_after(server: LoopbackServer) -> None:
    url = server.add("/slow-down", serve_bytes(b"", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(
        TransientStatusError, match=r"HTTP 429 Too Many Requests \(Retry-After: 7\)"
    ) as caught:
        fetch(make_source(), url)
    assert caught.value.retry_after == 7.0


def test_retry_after_as_seconds_or_http_date() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (parse_retry_after(in_a_minute) or 0) <= 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- redirects ------------------------------------------------------------------------------


def redirect_chain(server: LoopbackServer) -> str:
    """/a -> /b -> /c -> /final.png: three redirects, absolute and relative, assorted codes."""
    final = server.add("/final.png", serve_bytes(b"png", content_type="image/png"))
    server.add("/c", redirect_to(final, status=307))
    server.add("/b", redirect_to("/c", status=301))
    return server.add("/a", redirect_to(server.url("/b"), status=303))


def test_follows_redirects_within_the_limit(server: LoopbackServer) -> None:
    data, media = fetch(make_source(max_redirects=3), redirect_chain(server))
    assert (data, media.media_type) == (b"png", "image/png")
    assert [request.path for request in server.requests] == ["/a", "/b", "/c", "/final.png"]


@pytest.mark.parametrize("limit", [0, 2])
def test_too_many_redirects_are_permanent(server: LoopbackServer, limit: int) -> None:
    start = redirect_chain(server)
    with pytest.raises(PermanentFetchError, match=r"too many redirects.*HMA_FETCH_MAX_REDIRECTS"):
        fetch(make_source(max_redirects=limit), start)
    assert [request.path for request in server.requests] == ["/a", "/b", "/c"][: limit + 1]


def test_a_redirect_loop_ends(server: LoopbackServer) -> None:
    url = server.add("/loop", redirect_to("/loop"))
    with pytest.raises(PermanentFetchError, match="too many redirects"):
        fetch(make_source(max_redirects=5), url)
    assert len(server.requests) == 6


def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    server: LoopbackServer, connections: list[str]
) -> None:
    url = server.add("/r", redirect_to("http://10.1.2.3/media.jpg"))
    with pytest.raises(
        AddressRefusedError, match=r"10\.1\.2\.3: it is a private address.*ALLOWED_NETWORKS"
    ):
        fetch(make_source(), url)
    assert connections == ["127.0.0.1"]


def test_a_redirect_to_another_scheme_is_refused(server: LoopbackServer) -> None:
    url = server.add("/r", redirect_to("file:///etc/passwd"))
    with pytest.raises(
        PermanentFetchError,
        match=r"redirects to 'file:///etc/passwd', which cannot be fetched: only http and https",
    ):
        fetch(make_source(), url)


def test_a_redirect_without_location_is_permanent(server: LoopbackServer) -> None:
    url = server.add("/r", serve_bytes(b"", status=302))
    with pytest.raises(PermanentFetchError, match="without a Location header"):
        fetch(make_source(), url)


# --- size -----------------------------------------------------------------------------------


def test_refuses_media_whose_content_length_is_over_the_cap(server: LoopbackServer) -> None:
    url = server.add("/big", serve_bytes(os.urandom(4096)))
    destination = io.BytesIO()
    with pytest.raises(
        PermanentFetchError, match="larger than 1024 bytes; its Content-Length is 4096"
    ):
        make_source(max_bytes=1024).fetch(url, destination)
    assert destination.getvalue() == b""


@pytest.mark.parametrize("framing", ["chunked", "close-delimited"])
def test_counts_bytes_while_streaming(server: LoopbackServer, framing: str) -> None:
    body = os.urandom(10_000)
    route = (
        serve_chunked([body[i : i + 700] for i in range(0, len(body), 700)])
        if framing == "chunked"
        else serve_bytes(body, content_length=False)
    )
    url = server.add("/big", route)
    destination = io.BytesIO()
    with pytest.raises(PermanentFetchError, match="larger than 1024 bytes"):
        make_source(max_bytes=1024).fetch(url, destination)
    assert len(destination.getvalue()) <= 1024


def test_the_cap_counts_decoded_bytes(server: LoopbackServer) -> None:
    bomb = gzip.compress(bytes(1_000_000))  # about 1 KB on the wire
    url = server.add("/bomb", serve_bytes(bomb, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(PermanentFetchError, match="larger than 65536 bytes"):
        fetch(make_source(max_bytes=65536), url)


def test_media_of_exactly_the_cap_is_fetched(server: LoopbackServer) -> None:
    url = server.add("/exact", serve_chunked([os.urandom(512), os.urandom(512)]))
    assert fetch(make_source(max_bytes=1024), url)[1].size == 1024


# --- time and connections -------------------------------------------------------------------


@pytest.mark.parametrize("drip", ["body", "headers"])
def test_a_slow_drip_is_cut_off_at_the_deadline(server: LoopbackServer, drip: str) -> None:
    route = slow_body(1000, interval=0.05) if drip == "body" else slow_headers(interval=0.05)
    url = server.add("/drip", route)
    started = time.monotonic()
    with pytest.raises(
        TransientFetchError, match=r"did not finish within 1s \(limit: HMA_FETCH_TIMEOUT_SECONDS\)"
    ):
        fetch(make_source(timeout_seconds=1), url)
    assert time.monotonic() - started < 2


def test_connection_refused_is_transient() -> None:
    with pytest.raises(TransientFetchError, match=r"connection failed.*refused"):
        fetch(make_source(), f"http://127.0.0.1:{closed_port()}/a.jpg")


def test_a_connection_dropped_mid_body_is_transient(server: LoopbackServer) -> None:
    url = server.add("/cut", drop_after(b"x" * 10, promised=1000))
    with pytest.raises(TransientFetchError, match="connection failed"):
        fetch(make_source(), url)


def test_https_to_a_server_that_does_not_speak_tls_is_permanent(server: LoopbackServer) -> None:
    url = server.add("/a.jpg", serve_bytes(b"jpeg")).replace("http://", "https://")
    with pytest.raises(PermanentFetchError, match="TLS"):
        fetch(make_source(), url)


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    tmp_path: Path, connections: list[str]
) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path, "media.example")
    with loopback_server(tls=server_tls) as server:
        url = server.add("/a.jpg", serve_bytes(b"jpeg", content_type="image/jpeg"))
        by_name = url.replace("127.0.0.1", "media.example")
        resolver = FixedResolver("127.0.0.1")

        trusting = UrlContentSource(fetch_settings(), resolver=resolver, ssl_context=client_tls)
        assert fetch(trusting, by_name) == (b"jpeg", FetchedMedia(4, "image/jpeg"))
        assert server.requests[0].headers["Host"] == f"media.example:{server.port}"
        assert resolver.asked == ["media.example"]

        with pytest.raises(PermanentFetchError, match="TLS certificate is not valid"):
            fetch(UrlContentSource(fetch_settings(), resolver=resolver), by_name)  # system CAs
        with pytest.raises(PermanentFetchError, match="TLS certificate is not valid"):
            fetch(trusting, url)  # the certificate names media.example, not 127.0.0.1
    assert set(connections) == {"127.0.0.1"}


# --- bad locations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "s3://bucket/key.jpg",
        "data:image/png;base64,AAAA",
        "example.com/a.jpg",
        "",
    ],
)
def test_only_http_and_https(location: str, connections: list[str]) -> None:
    with pytest.raises(PermanentFetchError, match="only http and https URLs can be fetched"):
        fetch(make_source(), location)
    assert connections == []


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://", "no host"),
        ("http:///a.jpg", "no host"),
        ("http://[::1/a.jpg", "malformed"),
        ("http://example.com:99999/", "malformed"),
        ("http://example.com:port/", "malformed"),
        ("http://example.com:0/", "port 0"),
        ("http://exa mple.com/", "not a valid host name"),
        ("http://bad..name/", "not a valid host name"),
        ("http://example.com/a\nb.jpg", "control characters"),
        (" http://example.com/a.jpg", "leading or trailing spaces"),
        ("http://user:secret@example.com/a.jpg", "credentials"),
    ],
)
def test_malformed_urls_are_permanent(location: str, why: str, connections: list[str]) -> None:
    with pytest.raises(PermanentFetchError, match=why):
        fetch(make_source(), location)
    assert connections == []


# --- the address guard ----------------------------------------------------------------------


def test_refuses_loopback_unless_allowed(server: LoopbackServer, connections: list[str]) -> None:
    url = server.add("/a.jpg", serve_bytes(b"jpeg"))
    with pytest.raises(
        AddressRefusedError,
        match=r"127\.0\.0\.1: it is a loopback address; .*HMA_FETCH_ALLOWED_NETWORKS",
    ):
        fetch(make_source(allowed_networks=()), url)
    with pytest.raises(AddressRefusedError, match=r"localhost: it resolves to 127\.0\.0\.1"):
        fetch(make_source(allowed_networks=()), f"http://localhost:{server.port}/a.jpg")
    assert (server.requests, connections) == ([], [])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1]/", "loopback"),  # only 127.0.0.1/32 is allowed
        ("http://10.0.0.1/x", "private"),
        ("https://10.0.0.1/x", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.10/", "private"),
        ("http://100.64.0.1/", "shared"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[::ffff:127.0.0.2]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fc00::1]/", "private"),
        ("http://[::]/", "unspecified"),
        ("http://2130706434/", "loopback"),  # 127.0.0.2 written as one number
    ],
)
def test_refuses_addresses_that_are_not_public(
    url: str, reason: str, connections: list[str]
) -> None:
    with pytest.raises(AddressRefusedError, match=f"an? {reason}") as caught:
        fetch(make_source(), url)
    assert caught.value.reason.startswith(reason)
    assert connections == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of a public address
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("198.51.100.7", "private"),  # documentation range
        ("255.255.255.255", "private"),
        ("240.0.0.1", "private"),
    ],
)
def test_non_public_reason(address: str, reason: str | None) -> None:
    found = non_public_reason(ipaddress.ip_address(address))
    assert (found.split(" (")[0] if found else None) == reason


def test_allowed_networks_let_listed_ranges_through() -> None:
    guard = AddressGuard.from_setting(["10.0.0.0/8", "fd00::/8"])
    guard.check("host", ipaddress.ip_address("10.9.8.7"))
    guard.check("host", ipaddress.ip_address("::ffff:10.0.0.1"))
    guard.check("host", ipaddress.ip_address("fd12::1"))
    with pytest.raises(AddressRefusedError):
        guard.check("host", ipaddress.ip_address("192.168.0.1"))


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.1/8", "localhost", "10.0.0.0/8/8"])
def test_malformed_allowed_networks_name_the_setting(bad: str) -> None:
    from hma_framework.settings import SettingsError, load_settings

    # Refused when settings load, before any process starts serving.
    with pytest.raises(SettingsError, match=r"HMA_FETCH_ALLOWED_NETWORKS \(fetch\.allowed_netwo"):
        load_settings(environ={"HMA_FETCH_ALLOWED_NETWORKS": f"127.0.0.1/32,{bad}"})


def test_connects_to_the_address_it_checked(server: LoopbackServer, connections: list[str]) -> None:
    """DNS rebinding: a name that answers loopback, then a private address, for each lookup."""
    answers = iter(["127.0.0.1", "10.0.0.1", "10.0.0.1"])
    asked: list[str] = []

    def rebinding_resolver(host: str, port: int) -> Sequence[AddrInfo]:
        asked.append(host)
        return FixedResolver(next(answers))(host, port)

    source = UrlContentSource(fetch_settings(), resolver=rebinding_resolver)
    url = server.add("/a.jpg", serve_bytes(b"jpeg")).replace("127.0.0.1", "media.example")

    assert fetch(source, url)[0] == b"jpeg"
    assert asked == ["media.example"]  # one lookup: the connection used its checked answer
    assert connections == ["127.0.0.1"]
    assert server.requests[0].headers["Host"] == f"media.example:{server.port}"

    with pytest.raises(AddressRefusedError, match=r"media\.example: it resolves to 10\.0\.0\.1"):
        fetch(source, url)
    assert connections == ["127.0.0.1"]


@pytest.mark.parametrize(
    "addresses", [("93.184.216.34", "10.0.0.1"), ("127.0.0.1", "::1"), ("127.0.0.1", "10.0.0.1")]
)
def test_every_address_of_a_name_must_pass(
    addresses: tuple[str, ...], connections: list[str]
) -> None:
    source = UrlContentSource(fetch_settings(), resolver=FixedResolver(*addresses))
    with pytest.raises(AddressRefusedError, match=f"it resolves to {addresses[1]}"):
        fetch(source, "http://media.example/a.jpg")
    assert connections == []


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (socket.EAI_NONAME, PermanentFetchError, "does not exist"),
        (socket.EAI_AGAIN, TransientFetchError, "could not resolve"),
    ],
)
def test_name_resolution_failures(code: int, error: type[Exception], message: str) -> None:
    def failing_resolver(host: str, port: int) -> Sequence[AddrInfo]:
        raise socket.gaierror(code, "resolver says no")

    source = UrlContentSource(fetch_settings(), resolver=failing_resolver)
    with pytest.raises(error, match=message):
        fetch(source, "http://media.example/a.jpg")


# --- the plugin -----------------------------------------------------------------------------


def test_registered_as_the_url_content_source() -> None:
    registry = make_registry(extra_plugins=[hma_framework.builtin], load_entry_points=False)
    record = registry.content_source_for("https://example.com/a.jpg")
    assert record is not None
    assert (record.name, record.schemes) == ("url", ("http", "https"))
    assert registry.content_source_for("HTTP://example.com/a.jpg") is record
    assert registry.content_source_for("ftp://example.com/a.jpg") is None
    assert isinstance(record.factory(Settings(fetch=fetch_settings())), UrlContentSource)
