"""A small HTTP/1.1 client for outgoing deliveries: one POST at a time per kept-alive connection.

Why not aiohttp's client: a delivery is one small POST and a small answer, and aiohttp spent about
200 µs of CPU on each here (request and response objects, multidicts, cookie jar, timers, tracing),
which made one event to 10,000 endpoints CPU-bound; this does the same work in about 50 µs.

What it does: keep-alive connections pooled per (scheme, host, port), TLS with certificate and
hostname checks, responses parsed by llhttp (`http_parser`: framing, size caps, 1xx answers skipped),
a total timeout per request. With an SSRF policy, every connection goes to an
address `ssrf.resolve_checked` allowed for the host parsed from the URL (checked answers are cached
for `DNS_TTL` seconds, and concurrent look-ups of one host are shared). What it does not: redirects
(never followed), proxies, cookies, compression (none is asked for), HTTP/2, pipelining, retries.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import yarl

from kamiyo.delivery.http_parser import Parser, ProtocolError, Response
from kamiyo.kit import ssrf

__all__ = ["HttpPool", "ProtocolError", "Response", "parse_target"]

DNS_TTL = 10.0  # seconds a checked answer is reused for new connections
KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default)


@dataclass(frozen=True, slots=True)
class Target:
    https: bool
    host: str  # as connected to and checked: IDNA-encoded, IPv6 without brackets
    port: int
    head: bytes  # request line and Host header

    @property
    def key(self) -> tuple[bool, str, int]:
        return (self.https, self.host, self.port)


@functools.lru_cache(maxsize=65536)
def parse_target(url: str) -> Target:
    """Scheme, host, port and encoded request line of a URL (yarl, as aiohttp parses it)."""
    parsed = yarl.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.raw_host or parsed.port is None:
        raise ssrf.UnsafeURL("only http(s) URLs with a host can be posted to")
    head = f"POST {parsed.raw_path_qs or '/'} HTTP/1.1\r\nHost: {parsed.host_port_subcomponent}\r\n"
    return Target(parsed.scheme == "https", parsed.raw_host, parsed.port, head.encode("ascii"))


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The system's trusted CAs, certificate and host name checks (as aiohttp's default); loaded once."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; at most one request in flight."""

    def __init__(self, key: tuple[bool, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser: Parser | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (under `kamiyo serve`) are not asyncio.Transport subclasses but have its methods
        self.transport = cast(asyncio.Transport, transport)

    def request(self, data: bytes, keep: int) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.parser = Parser(keep)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if self.parser is None:  # nothing asked: a confused server
            self.close()
            return
        try:
            done = self.parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if done:
            self._finish()

    def eof_received(self) -> bool:
        self.closed = True  # never reused: the server is done with this connection
        if self.parser is not None:
            try:
                self.parser.feed_eof()
            except ProtocolError as exc:
                self._fail(exc)
                return False
            self._finish()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.parser is not None and exc is None:  # a clean close (TLS may not report eof_received first)
            self.eof_received()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ProtocolError("the server closed the connection"))

    def _finish(self) -> None:
        parser, waiter = self.parser, self.waiter
        assert parser is not None and waiter is not None
        self.parser = None
        if not parser.reusable:
            self.close()
        if not waiter.done():
            waiter.set_result(Response(parser.status, parser.headers, parser.body))

    def _fail(self, exc: Exception) -> None:
        self.parser = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    @property
    def reusable(self) -> bool:
        return not self.closed and self.parser is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpPool:
    """Keep-alive connections and checked DNS answers of one worker. `policy` None: no SSRF checks
    (operator-configured APIs only)."""

    def __init__(
        self, *, policy: ssrf.Policy | None, max_idle: int = 200, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.policy = policy
        self.max_idle = max_idle
        self._ssl = ssl_context
        self._idle: OrderedDict[_Connection, None] = OrderedDict()  # least recently used first
        self._by_key: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Task[list[str]]] = {}

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,  # noqa: ASYNC109  # one total timeout over connecting, sending and reading
        keep: int,
    ) -> Response:
        """POST `body`; the answer's first `keep` body bytes. Raises UnsafeURL, OSError, ProtocolError, TimeoutError."""
        target = parse_target(url)
        lines = [target.head, b"Content-Length: %d\r\n" % len(body)]
        for name, value in headers.items():
            if "\n" in value or "\r" in value:
                raise ValueError(f"header {name} contains a line break")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines += [b"\r\n", body]
        self._evict()
        async with asyncio.timeout(timeout):
            conn = self._take_idle(target.key) or await self._connect(target)
            try:
                response = await conn.request(b"".join(lines), keep)
            except BaseException:
                conn.close()
                raise
        if conn.reusable:
            self._put_idle(conn)
        return response

    def _take_idle(self, key: tuple[bool, str, int]) -> _Connection | None:
        stack = self._by_key.get(key)
        found = None
        while stack and found is None:
            conn = stack.pop()
            self._idle.pop(conn, None)
            if conn.reusable and time.monotonic() - conn.idle_since < KEEPALIVE:
                found = conn
            else:
                conn.close()
        if stack is not None and not stack:
            del self._by_key[key]
        return found

    def _put_idle(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._by_key.setdefault(conn.key, []).append(conn)
        self._idle[conn] = None
        self._evict()

    def _evict(self) -> None:
        """Close idle connections beyond the cap, and those idle too long (least recently used first)."""
        now = time.monotonic()
        while self._idle:
            oldest = next(iter(self._idle))
            if len(self._idle) <= self.max_idle and now - oldest.idle_since < KEEPALIVE:
                break
            self._idle.pop(oldest)
            self._unlist(oldest)
            oldest.close()

    def _unlist(self, conn: _Connection) -> None:
        stack = self._by_key.get(conn.key)
        if stack is not None and conn in stack:
            stack.remove(conn)
        if stack is not None and not stack:
            del self._by_key[conn.key]

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        context = self._context() if target.https else None
        hostname = target.host if target.https else None
        if self.policy is None:
            _, conn = await loop.create_connection(
                lambda: _Connection(target.key), target.host, target.port, ssl=context, server_hostname=hostname
            )
            return conn
        error: OSError | None = None
        for address in await self._checked(target.host, target.port):
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(target.key), address, target.port, ssl=context, server_hostname=hostname
                )
                return conn
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    async def _checked(self, host: str, port: int) -> list[str]:
        """The addresses `ssrf.resolve_checked` allows for a host: cached for DNS_TTL, one look-up at a time."""
        key = (host, port)
        hit = self._dns.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._resolving.get(key)
        if task is None:
            task = self._resolving[key] = asyncio.ensure_future(self._resolve(host, port))
            task.add_done_callback(functools.partial(self._resolved, key))
        return await asyncio.shield(task)

    def _resolved(self, key: tuple[str, int], task: asyncio.Task[list[str]]) -> None:
        self._resolving.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have timed out already

    async def _resolve(self, host: str, port: int) -> list[str]:
        assert self.policy is not None
        addresses = [str(ip) for ip in await ssrf.resolve_checked(host, port, self.policy)]
        if len(self._dns) > 10_000:
            self._dns.clear()
        self._dns[(host, port)] = (time.monotonic() + DNS_TTL, addresses)
        return addresses

    def _context(self) -> ssl.SSLContext:
        return self._ssl or default_ssl_context()

    async def close(self) -> None:
        for conn in list(self._idle):
            conn.close()
        self._idle.clear()
        self._by_key.clear()
        for task in list(self._resolving.values()):
            task.cancel()
        await asyncio.sleep(0)
