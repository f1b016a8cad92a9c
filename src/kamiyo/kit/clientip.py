"""Who the client is: the peer address, or what a trusted proxy says it forwarded.

`KAMIYO_TRUSTED_PROXIES` lists the addresses or networks whose `X-Forwarded-For` (or, when a request
has none, `Forwarded`) is believed; by default none is, so the peer address is the client. The forwarded
chain is read from the right: trusted hops are skipped and the first untrusted address is the client, so
an address a client puts at the left of the header itself changes nothing. A trusted proxy's
`X-Forwarded-Proto` (or `proto=`) sets the scheme.

Per-client limits count an IPv6 client by its /64 (one subscriber's prefix; it holds 2^64 addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from starlette.types import ASGIApp, Receive, Scope, Send

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_CLIENT_PREFIX = 64


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`10.0.0.1, 192.168.0.0/16, ::1` -> networks; ValueError names the entry that is neither."""
    networks = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR network: {item!r}") from exc
    return tuple(networks)


@lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """An address from a header hop or a peer: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`; None otherwise."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=65536)
def rate_identity(host: str) -> str:
    """The key a per-client limit counts under: an IPv4 address, or the /64 of an IPv6 one."""
    address = parse_address(host)
    if address is None:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def client_identity(scope: Scope) -> str:
    """The per-client limit key of a request (see `rate_identity`)."""
    client = scope.get("client")
    return rate_identity(client[0]) if client else "unknown"


def _forwarded_pairs(values: Iterable[str]) -> list[dict[str, str]]:
    """RFC 7239 elements, in order: `for=1.2.3.4;proto=https, for="[::1]"` -> [{"for": …, "proto": …}, …]."""
    elements = []
    for value in values:
        for element in value.split(","):
            pairs = {}
            for pair in element.split(";"):
                name, _, val = pair.partition("=")
                if name.strip():
                    pairs[name.strip().lower()] = val.strip().strip('"')
            elements.append(pairs)
    return elements


class TrustedProxies:
    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def resolve(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None] | None:
        """(client address, scheme or None) when `peer` is a trusted proxy that forwarded a client; else None."""
        if not self.networks or not self.trusts(parse_address(peer)):
            return None
        xff: list[str] = []
        forwarded: list[str] = []
        proto: str | None = None
        for name, value in headers:
            if name == b"x-forwarded-for":
                xff.append(value.decode("latin-1"))
            elif name == b"forwarded":
                forwarded.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").strip().lower()
        if xff:
            hops = [hop for value in xff for hop in value.split(",")]
        else:
            elements = _forwarded_pairs(forwarded)
            hops = [element.get("for", "") for element in elements]
            proto = proto or next((e["proto"].lower() for e in reversed(elements) if "proto" in e), None)
        client = self._client(hops)
        scheme = proto if proto in ("http", "https") else None
        if client is None and scheme is None:
            return None
        return client or peer, scheme

    def _client(self, hops: list[str]) -> str | None:
        nearest: str | None = None
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:  # "unknown", an obfuscated name: the hop before it is all that is known
                return nearest
            nearest = str(address)
            if not self.trusts(address):
                return nearest
        return nearest


class ClientAddressMiddleware:
    """Sets `scope["client"]` (and `scheme`) from a trusted proxy's headers, before anything reads them."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted.networks:
            peer = scope.get("client")
            found = self.trusted.resolve(peer[0], scope["headers"]) if peer else None
            if found is not None:
                client, scheme = found
                scope["client"] = (client, 0)
                if scheme is not None and scope["type"] == "http":
                    scope["scheme"] = scheme
        await self.app(scope, receive, send)
