"""SSRF guard for outgoing requests to user-given URLs.

Checked twice: when a URL is stored (`check_url`) and when a connection is made (`resolve_checked`,
called by the delivery HTTP client, `kamiyo.delivery.http`): the host is resolved once, every address
must be public, and the client connects to exactly the checked addresses, so a DNS answer that
changes later (rebinding) cannot reach an internal address. Loopback is allowed only
with `KAMIYO_ALLOW_HTTP_WEBHOOKS=1`, for local tests; private, link-local (cloud metadata), CGNAT,
multicast, reserved and IPv4-mapped/embedded forms of them never are.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HostResolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT = 5.0
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\s]")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class UnsafeURL(ValueError):
    """The URL or the address it resolves to may not be used for outgoing requests."""


@dataclass(frozen=True, slots=True)
class Policy:
    allow_loopback: bool = False


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_resolver: HostResolver = system_resolve


def set_resolver(resolver: HostResolver | None) -> None:
    """Replace name resolution (tests simulate DNS answers and rebinding with this)."""
    global _resolver
    _resolver = resolver or system_resolve


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, policy: Policy) -> str | None:
    """Why this address may not be contacted, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "IPv4-mapped IPv6 address"
        inner = _embedded_v4(ip)
        if inner is not None:
            problem = address_problem(inner, policy)
            return f"embeds {inner}: {problem}" if problem else None
        if ip.scope_id:
            return "scoped IPv6 address"
    if ip.is_loopback:
        return None if policy.allow_loopback else "loopback address"
    if ip.is_link_local:
        return "link-local address (cloud metadata range)"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_unspecified:
        return "unspecified address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if ip.is_private:
        return "private address"
    if ip.is_reserved or not ip.is_global:
        return "reserved address"
    return None


_IP_CHARS = frozenset("0123456789abcdefABCDEF.:[]%")


def parse_ip(host: str) -> IPAddress | None:
    if not host or not _IP_CHARS.issuperset(host):  # fast path for ordinary names
        return None
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _check_address(host: str, address: str, policy: Policy) -> IPAddress:
    ip = parse_ip(address)
    if ip is None:
        raise UnsafeURL(f"{host} resolved to something that is not an IP address")
    problem = address_problem(ip, policy)
    if problem:
        raise UnsafeURL(f"{host} resolves to a {problem}, which is not allowed")
    return ip


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"URL longer than {MAX_URL_LENGTH} characters")
    if _BAD_CHARS.search(url):
        raise UnsafeURL("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError as exc:
        raise UnsafeURL(f"not a valid URL: {exc}") from exc
    if not parts.hostname:
        raise UnsafeURL("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("credentials in the URL are not supported")
    return parts


@functools.lru_cache(maxsize=65536)
def static_check(url: str, policy: Policy) -> SplitResult:
    """Scheme, shape and literal-address checks that need no DNS (cached: they depend on nothing else)."""
    parts = _split(url)
    host = parts.hostname or ""
    ip = parse_ip(host)
    if ip is None and not _looks_like_hostname(host):
        raise UnsafeURL("URL host is neither a hostname nor an IP address")
    if ip is None and (host.rstrip(".").lower() in _METADATA_HOSTS or host.endswith(".internal")):
        raise UnsafeURL("metadata and internal hostnames are not allowed")
    loopback_ok = policy.allow_loopback and (host.lower() == "localhost" or (ip is not None and ip.is_loopback))
    if parts.scheme == "http" and not loopback_ok:
        raise UnsafeURL("only https:// URLs are allowed")
    if parts.scheme not in ("https", "http"):
        raise UnsafeURL("only https:// URLs are allowed")
    if ip is not None:
        _check_address(host, str(ip), policy)
    return parts


def _looks_like_hostname(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    if not labels or len(host) > 253:
        return False
    for label in labels:
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not all(c.isalnum() or c in "-_" for c in label) or not label.isascii():
            return False
    return not labels[-1].isdigit()  # "2130706433", "127.1", "1.2.3.4.5" and friends


async def resolve_checked(host: str, port: int, policy: Policy) -> list[IPAddress]:
    """Resolve once; every address must be allowed (one bad answer refuses the host)."""
    ip = parse_ip(host)
    if ip is not None:
        return [_check_address(host, str(ip), policy)]
    try:
        addresses = await asyncio.wait_for(_resolver(host, port), RESOLVE_TIMEOUT)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise UnsafeURL(f"{host} does not resolve") from exc
    if not addresses:
        raise UnsafeURL(f"{host} does not resolve")
    return [_check_address(host, address, policy) for address in dict.fromkeys(addresses)]


async def check_url(url: str, policy: Policy) -> str:
    """Full check at creation: shape, scheme and every address the host resolves to. Returns the URL."""
    parts = static_check(url, policy)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    await resolve_checked(parts.hostname or "", port, policy)
    return url
