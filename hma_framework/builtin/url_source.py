"""The built-in URL content source: http(s) media streamed into a file, within limits.

The limits come from ``FetchSettings``: one deadline for the whole fetch (connects, redirects,
headers and body), a size cap checked against Content-Length and again while streaming, a
bounded number of redirects, and the address guard of
:mod:`hma_framework.builtin.address_guard`. Redirects are followed here rather than by urllib3
so that every hop goes through the guard, and connections are urllib3 connections whose
socket is opened only to an address the guard has just checked.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib.metadata
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import attrs
from urllib3 import exceptions as urllib3_errors
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.response import HTTPResponse

from hma_framework.builtin.address_guard import AddressGuard, Resolver
from hma_framework.errors import PermanentFetchError, TransientFetchError
from hma_framework.http_headers import parse_retry_after
from hma_framework.settings import FetchSettings, Settings
from hma_framework.types import FetchedMedia

SCHEMES = ("http", "https")
CONNECT_TIMEOUT_SECONDS = 10.0
#: The longest silence allowed while waiting for data; the fetch's deadline applies as well.
READ_TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Client errors that say "try again later" rather than "this will never work".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})

_NUMERIC_HOST = re.compile(r"[0-9.]+")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")
SocketOptions = Sequence[tuple[int, int, int | bytes]] | None
_NETWORK_ERRORS = (OSError, http.client.HTTPException, urllib3_errors.HTTPError)


class TransientStatusError(TransientFetchError):
    """The server answered with a status worth retrying (5xx, 408, 425, 429).

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent a readable one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def make_url_source(settings: Settings) -> UrlContentSource:
    """The factory the built-in plugin registers: a URL source configured by ``fetch.*``."""
    return UrlContentSource(settings.fetch)


@functools.cache
def user_agent() -> str:
    try:
        version = importlib.metadata.version("hma-framework")
    except importlib.metadata.PackageNotFoundError:
        version = "dev"
    return f"hma-framework/{version} (media fetch)"


class UrlContentSource:
    """Streams http(s) media into a file, refusing addresses that are not public."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``resolver`` replaces the system's (tests); ``ssl_context`` trusts other certificate
        authorities than the system's (tests, a private CA)."""
        self._settings = settings
        self._ssl_context = ssl_context
        # A malformed allowed network is a ValueError here, when the source is built.
        self._guard = AddressGuard.from_setting(settings.allowed_networks, resolver)
        self._headers = {
            "User-Agent": user_agent(),
            "Accept": "*/*",
            "Accept-Encoding": "identity",
        }

    def fetch(self, location: str, destination: BinaryIO) -> FetchedMedia:
        target = parse_url(location)
        with _Deadline(self._settings.timeout_seconds) as deadline:
            for _hop in range(self._settings.max_redirects + 1):
                conn, response = self._request(target, deadline)
                try:
                    if response.status not in REDIRECT_STATUSES:
                        _check_status(response, target)
                        return self._stream(response, target, destination, deadline)
                    target = _redirect_target(response, target)
                finally:
                    response.close()
                    conn.close()
        raise PermanentFetchError(
            f"too many redirects: {location} was still redirecting (next to {target.url}) "
            f"after following {self._settings.max_redirects} (limit: HMA_FETCH_MAX_REDIRECTS)"
        )

    def _request(self, target: _Target, deadline: _Deadline) -> tuple[HTTPConnection, HTTPResponse]:
        conn: HTTPConnection
        if target.scheme == "https":
            conn = _CheckedHTTPSConnection(
                target.host, target.port, self._guard, deadline, self._ssl_context
            )
        else:
            conn = _CheckedHTTPConnection(target.host, target.port, self._guard, deadline)
        try:
            conn.timeout = deadline.timeout(CONNECT_TIMEOUT_SECONDS)
            conn.connect()
            conn.timeout = deadline.timeout(READ_TIMEOUT_SECONDS)
            conn.request("GET", target.request_target, headers=self._headers, preload_content=False)
            return conn, conn.getresponse()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, _NETWORK_ERRORS):
                raise _classify(exc, target, deadline) from exc
            raise

    def _stream(
        self, response: HTTPResponse, target: _Target, destination: BinaryIO, deadline: _Deadline
    ) -> FetchedMedia:
        limit = self._settings.max_bytes
        declared = response.length_remaining  # Content-Length, when the server sent one
        if declared is not None and declared > limit:
            raise _too_large(target, limit, f"; its Content-Length is {declared}")
        size = 0
        while chunk := _read_chunk(response, target, deadline):
            size += len(chunk)
            if size > limit:
                raise _too_large(target, limit)
            destination.write(chunk)
            if deadline.remaining() <= 0:
                raise _deadline_error(target, deadline)
        if deadline.expired:  # the connection was cut: what arrived is not the whole body
            raise _deadline_error(target, deadline)
        return FetchedMedia(size=size, media_type=_media_type(response))


# --- URLs -----------------------------------------------------------------------------------


@attrs.frozen
class _Target:
    """A URL checked and split into what a request needs."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA); an IPv6 address without brackets
    port: int
    request_target: str  # path and query, non-ASCII percent-encoded


def parse_url(url: str, *, redirected_from: str | None = None) -> _Target:
    """Split ``url`` for a request, or raise ``PermanentFetchError`` saying what is wrong."""

    def bad(why: str) -> PermanentFetchError:
        if redirected_from:
            return PermanentFetchError(
                f"{redirected_from} redirects to {url!r}, which cannot be fetched: {why}"
            )
        return PermanentFetchError(f"cannot fetch {url!r}: {why}")

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise bad("the URL contains control characters")
    if url != url.strip():
        raise bad("the URL has leading or trailing spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad(f"the URL is malformed ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        what = f"{scheme}: URLs" if scheme else "URLs without a scheme"
        raise bad(f"only http and https URLs can be fetched, not {what}")
    if not parts.hostname:
        raise bad("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials in URLs (user:password@host) are not supported")
    if port == 0:
        raise bad("port 0 is not a port a server can listen on")
    host = _ascii_host(parts.hostname, bad)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # What a browser does with spaces and non-ASCII characters; http.client would refuse them.
    target = re.sub(r"[^\x21-\x7e]", lambda match: quote(match.group(0), safe=""), target)
    default_port = 443 if scheme == "https" else 80
    return _Target(url, scheme, host, port or default_port, target)


def _ascii_host(hostname: str, bad: Callable[[str], PermanentFetchError]) -> str:
    if ":" in hostname or _NUMERIC_HOST.fullmatch(hostname):
        return hostname  # an IP address (urlsplit has checked the IPv6 brackets)
    try:
        ascii_host = hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise bad(f"{hostname!r} is not a valid host name ({exc})") from exc
    if not _HOST_NAME.fullmatch(ascii_host):
        raise bad(f"{hostname!r} is not a valid host name")
    return ascii_host


def _redirect_target(response: HTTPResponse, target: _Target) -> _Target:
    location = response.headers.get("Location")
    if not location:
        raise PermanentFetchError(
            f"{target.url} answered HTTP {response.status}, a redirect, without a Location header"
        )
    return parse_url(urljoin(target.url, location), redirected_from=target.url)


# --- responses ------------------------------------------------------------------------------


def _check_status(response: HTTPResponse, target: _Target) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    described = f"{target.url} answered HTTP {status} {response.reason or ''}".rstrip()
    if 500 <= status < 600 or status in RETRYABLE_CLIENT_STATUSES:
        header = response.headers.get("Retry-After")
        raise TransientStatusError(
            described + (f" (Retry-After: {header})" if header else ""),
            status=status,
            retry_after=parse_retry_after(header),
        )
    raise PermanentFetchError(described)


def _media_type(response: HTTPResponse) -> str | None:
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media_type or None


def _read_chunk(response: HTTPResponse, target: _Target, deadline: _Deadline) -> bytes:
    try:
        # read1: return what has arrived rather than wait for a full chunk of a slow body.
        return response.read1(CHUNK_BYTES) or b""
    except _NETWORK_ERRORS as exc:
        raise _classify(exc, target, deadline) from exc


def _too_large(target: _Target, limit: int, detail: str = "") -> PermanentFetchError:
    return PermanentFetchError(
        f"{target.url} is larger than {limit} bytes{detail} (limit: HMA_FETCH_MAX_BYTES)"
    )


def _deadline_error(target: _Target, deadline: _Deadline) -> TransientFetchError:
    return TransientFetchError(
        f"fetching {target.url} did not finish within {deadline.seconds:g}s "
        "(limit: HMA_FETCH_TIMEOUT_SECONDS)"
    )


def _classify(exc: BaseException, target: _Target, deadline: _Deadline) -> Exception:
    """The fetch error a network or protocol failure amounts to."""
    if deadline.expired or deadline.remaining() <= 0:
        return _deadline_error(target, deadline)
    where = target.url
    if isinstance(exc, TimeoutError | urllib3_errors.TimeoutError):
        return TransientFetchError(f"{where} timed out: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentFetchError(f"{where}: the server's TLS certificate is not valid ({exc})")
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        return PermanentFetchError(f"{where}: TLS with the server failed ({exc})")
    if isinstance(exc, urllib3_errors.DecodeError):
        return PermanentFetchError(f"{where}: the body could not be decoded ({exc})")
    if isinstance(
        exc,
        OSError
        | urllib3_errors.ProtocolError
        | urllib3_errors.SSLError
        | http.client.IncompleteRead,
    ):
        detail = exc.args[0] if isinstance(exc, urllib3_errors.ProtocolError) else exc
        return TransientFetchError(f"{where}: the connection failed ({detail})")
    return PermanentFetchError(f"{where} did not answer with valid HTTP ({exc!r})")


# --- connections ----------------------------------------------------------------------------


class _Deadline:
    """One fetch's time budget. When it runs out, the open connection is shut down, so a
    server that drips headers or body a byte at a time cannot hold a worker past it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        return self._ends_at - time.monotonic()

    def timeout(self, cap: float) -> float:
        """``cap`` or the time left, whichever is shorter; ``TimeoutError`` if none is left."""
        remaining = self.remaining()
        if remaining <= 0 or self.expired:
            raise TimeoutError("the fetch's deadline has passed")
        return min(cap, remaining)

    def watch(self, sock: socket.socket) -> None:
        """Make ``sock`` the connection to cut when the deadline passes."""
        with self._lock:
            self._socket = sock
            expired = self.expired
        if expired:
            _shut_down(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._socket
        if sock is not None:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # The plain socket's shutdown even on a TLS socket: SSLSocket.shutdown also drops the TLS
    # state the reading thread is using. A blocked read then returns at once.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _open_checked_socket(
    guard: AddressGuard, deadline: _Deadline, host: str, port: int, options: SocketOptions
) -> socket.socket:
    """Resolve ``host`` once, check every address, then connect to one of those addresses.

    Connecting to the checked address itself, never to the name again, is what defeats DNS
    rebinding: there is no second lookup that could answer differently.
    """
    last_error: OSError | None = None
    for family, kind, proto, _name, sockaddr in guard.resolve(host, port):
        sock = socket.socket(family, kind, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            sock.settimeout(deadline.timeout(CONNECT_TIMEOUT_SECONDS))
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    if last_error is None:  # guard.resolve returns at least one address
        raise RuntimeError(f"no address to connect to for {host}")
    raise last_error


class _CheckedSockets:
    """Mixed into urllib3's connections: sockets go only to addresses the guard checked."""

    _guard: AddressGuard
    _deadline: _Deadline
    _dns_host: str
    port: int
    sock: socket.socket

    def _new_conn(self) -> socket.socket:
        options: SocketOptions = getattr(self, "socket_options", None)  # urllib3's attribute
        sock = _open_checked_socket(self._guard, self._deadline, self._dns_host, self.port, options)
        self._deadline.watch(sock)
        return sock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._deadline.watch(self.sock)


class _CheckedHTTPConnection(_CheckedSockets, HTTPConnection):
    def __init__(self, host: str, port: int, guard: AddressGuard, deadline: _Deadline) -> None:
        super().__init__(host, port)
        self._guard = guard
        self._deadline = deadline


class _CheckedHTTPSConnection(_CheckedSockets, HTTPSConnection):
    """TLS (SNI and certificate checks) still uses the host name."""

    def __init__(
        self,
        host: str,
        port: int,
        guard: AddressGuard,
        deadline: _Deadline,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(host, port, ssl_context=ssl_context)
        self._guard = guard
        self._deadline = deadline
