"""Which addresses URL fetches may reach, decided before any packet is sent to them.

A submitted URL is chosen by whoever submits it, so without a guard it could make a worker
read the cloud metadata service (169.254.169.254), an internal admin page or a database on
the loopback interface. :class:`AddressGuard` resolves a host once, refuses it when any of its
addresses is not a public unicast address (unless ``fetch.allowed_networks`` covers it), and
hands back the addresses it checked: the connection is then made to exactly those, so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from hma_framework.errors import PermanentFetchError, TransientFetchError

ALLOWED_NETWORKS_SETTING = "HMA_FETCH_ALLOWED_NETWORKS (fetch.allowed_networks)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: One ``socket.getaddrinfo`` entry: family, type, proto, canonical name, socket address.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
#: Resolves ``(host, port)`` to stream-socket ``AddrInfo`` entries, like ``getaddrinfo``.
Resolver = Callable[[str, int], Sequence[AddrInfo]]

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefusedError(PermanentFetchError):
    """A URL's host resolves to an address fetches may not reach."""

    def __init__(self, host: str, address: IPAddress, reason: str) -> None:
        embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if _is_literal(host):
            what = f"it is IPv4 {embedded}," if embedded else "it is"
        else:
            what = f"it resolves to {address}" + (f" (IPv4 {embedded})," if embedded else ",")
        super().__init__(
            f"refusing to fetch from {host}: {what} {_article(reason)} {reason} address; "
            f"if this is intended, add its network to {ALLOWED_NETWORKS_SETTING}"
        )
        self.host = host
        self.address = str(address)
        self.reason = reason


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_allowed_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The CIDRs of ``fetch.allowed_networks``, or a ``ValueError`` naming the setting."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=True))
        except ValueError as exc:
            raise ValueError(
                f"{ALLOWED_NETWORKS_SETTING}: {value!r} is not a network in CIDR notation "
                f"such as 10.1.0.0/16 or 127.0.0.1/32 ({exc})"
            ) from exc
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (``"loopback"``...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return non_public_reason(embedded)
    # Order matters only for the message: the most specific description first.
    checks = [
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        (
            "shared (carrier-grade NAT)",
            isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE,
        ),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-global", not address.is_global),
    ]
    return next((reason for reason, applies in checks if applies), None)


def system_resolver(host: str, port: int) -> Sequence[AddrInfo]:
    """The operating system's resolver, asked for stream sockets only."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


@attrs.frozen
class AddressGuard:
    """Resolves hosts and refuses any whose addresses are not public or explicitly allowed."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    @classmethod
    def from_setting(
        cls, allowed_networks: Iterable[str], resolver: Resolver | None = None
    ) -> AddressGuard:
        return cls(parse_allowed_networks(allowed_networks), resolver or system_resolver)

    def is_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                candidates.append(embedded)
        return any(c in network for c in candidates for network in self.allowed_networks)

    def check(self, host: str, address: IPAddress) -> None:
        """Raise :class:`AddressRefusedError` unless ``address`` may be fetched from."""
        if self.is_allowed(address):
            return
        reason = non_public_reason(address)
        if reason is not None:
            raise AddressRefusedError(host, address, reason)

    def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """Every address ``host`` resolves to, each checked; refused if any one is not allowed.

        One refused address refuses them all: otherwise a name with one public and one private
        address would reach the private one whenever the public one failed to connect.
        """
        try:
            entries = self.resolver(host, port)
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_HOST:
                raise PermanentFetchError(f"the host {host} does not exist ({exc})") from exc
            raise TransientFetchError(f"could not resolve the host {host}: {exc}") from exc
        checked = []
        for entry in entries:
            family, _type, _proto, _name, sockaddr = entry
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            self.check(host, address)
            checked.append(entry)
        if not checked:
            raise PermanentFetchError(f"the host {host} has no IPv4 or IPv6 address")
        return checked


_NO_SUCH_HOST = {
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
}
