"""The delivery HTTP client against real loopback servers that answer byte for byte what each test says."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from kamiyo.delivery import http, http_parser
from kamiyo.delivery.client import DeliveryClient, static_check
from kamiyo.kit import ssrf
from tests.support.services import free_port

NOW = dt.datetime.now(dt.UTC)
LOOPBACK = ssrf.Policy(allow_loopback=True)
Answer = Callable[[int], bytes | None]  # request number (1-based) -> raw answer bytes, None: answer nothing


@dataclass
class RawServer:
    """A TCP server reading HTTP/1.1 requests (Content-Length bodies) and writing raw answers."""

    answer: Answer
    close_after: bool = False  # close each connection after answering
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                raw = self.answer(len(self.requests))
                if raw is None:  # say nothing until the client gives up
                    await reader.read()
                    break
                writer.write(raw)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self.port = free_port()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def post(client: DeliveryClient, url: str, body: bytes = b'{"x":1}') -> object:
    return await client.post(url, body, {"content-type": "application/json", "webhook-id": "msg_1"}, now=NOW)


@pytest.fixture
async def client() -> DeliveryClient:
    c = DeliveryClient(timeout=2.0, allow_loopback=True)
    yield c  # type: ignore[misc]
    await c.close()


async def test_keep_alive_reuses_one_connection_and_sends_the_exact_request(client: DeliveryClient) -> None:
    async with RawServer(lambda _n: ok(b"thanks")) as srv:
        results = [await post(client, f"{srv.url}/hook/{i}?a=b", b'{"n":%d}' % i) for i in range(5)]
        assert all(r.ok and r.status == 200 and r.excerpt == "thanks" for r in results)  # type: ignore[attr-defined]
        assert srv.connections == 1 and len(srv.requests) == 5
        first = srv.requests[0]
        assert first.startswith(b"POST /hook/0?a=b HTTP/1.1\r\n")
        assert f"\r\nHost: 127.0.0.1:{srv.port}\r\n".encode() in first and b"\r\nwebhook-id: msg_1\r\n" in first
        assert first.endswith(b'\r\n\r\n{"n":0}') and b"Content-Length: 7\r\n" in first


async def test_connection_close_and_http_1_0_answers_are_not_reused(client: DeliveryClient) -> None:
    answers = [ok(extra=b"Connection: close\r\n"), b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", ok()]
    async with RawServer(lambda n: answers[n - 1], close_after=True) as srv:
        for _ in range(3):
            assert (await post(client, srv.url + "/x")).ok  # type: ignore[attr-defined]
        assert srv.connections == 3


async def test_chunked_answer_with_extensions_and_trailers(client: DeliveryClient) -> None:
    chunked = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nhell\r\n6\r\no worl\r\n1\r\nd\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with RawServer(lambda _n: chunked) as srv:
        first, second = await post(client, srv.url), await post(client, srv.url)
        assert first.status == 202 and first.excerpt == "hello world" and second.ok  # type: ignore[attr-defined]
        assert srv.connections == 1


async def test_interim_100_answers_are_skipped_and_headers_are_read(client: DeliveryClient) -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nslow"
    async with RawServer(lambda _n: answer) as srv:
        result = await post(client, srv.url)
        assert (result.status, result.retry_after, result.excerpt, result.error) == (429, 7.0, "slow", "HTTP 429")  # type: ignore[attr-defined]


async def test_an_answer_delimited_by_close_is_read_to_the_end(client: DeliveryClient) -> None:
    async with RawServer(lambda _n: b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close_after=True) as srv:
        result = await post(client, srv.url)
        assert result.ok and result.excerpt == "until the end"  # type: ignore[attr-defined]
        assert (await post(client, srv.url)).ok and srv.connections == 2  # type: ignore[attr-defined]


async def test_a_big_answer_keeps_an_excerpt_and_gives_up_the_connection(client: DeliveryClient) -> None:
    big = b"a" * 3_000_000
    async with RawServer(lambda _n: ok(big)) as srv:
        result = await post(client, srv.url)
        assert result.ok and result.excerpt == "a" * 1024  # type: ignore[attr-defined]
        assert (await post(client, srv.url)).ok and srv.connections == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SMTP/1.0 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 0\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "before the response was complete"),
        # refused since llhttp frames the answers: shapes of response smuggling, and obsolete line folding
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX", "invalid chunked body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "before the response was complete"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "response headers too large"),
    ],
)
async def test_broken_answers_become_errors_not_exceptions(client: DeliveryClient, answer: bytes, error: str) -> None:
    async with RawServer(lambda _n: answer, close_after=True) as srv:
        result = await post(client, srv.url)
        assert result.status is None and error in (result.error or ""), result.error  # type: ignore[attr-defined]
        assert (await post(client, srv.url)).error  # type: ignore[attr-defined]  # a fresh connection, same answer


async def test_a_silent_server_times_out_and_its_connection_is_dropped() -> None:
    client = DeliveryClient(timeout=0.3, allow_loopback=True)
    try:
        async with RawServer(lambda n: None if n == 1 else ok()) as srv:
            result = await post(client, srv.url)
            assert result.error == "timeout after 0.3 s" and 280 <= result.latency_ms < 2000  # type: ignore[attr-defined]
            assert (await post(client, srv.url)).ok and srv.connections == 2  # type: ignore[attr-defined]
    finally:
        await client.close()


async def test_an_idle_connection_closed_by_the_server_is_not_used_again(client: DeliveryClient) -> None:
    async with RawServer(lambda _n: ok(), close_after=True) as srv:  # closes after answering, no header says so
        assert (await post(client, srv.url)).ok  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)  # the FIN arrives while the connection is idle
        assert (await post(client, srv.url)).ok and srv.connections == 2  # type: ignore[attr-defined]


async def test_connection_refused_is_an_error(client: DeliveryClient) -> None:
    result = await post(client, f"http://127.0.0.1:{free_port()}/")
    assert result.status is None and "ConnectionRefusedError" in (result.error or "")  # type: ignore[attr-defined]


async def test_header_values_with_line_breaks_are_refused(client: DeliveryClient) -> None:
    async with RawServer(lambda _n: ok()) as srv:
        result = await client.post(srv.url, b"{}", {"x-evil": "a\r\nInjected: 1"}, now=NOW)
        assert "line break" in (result.error or "") and srv.requests == []


async def test_idle_connections_are_capped() -> None:
    pool = http.HttpPool(policy=LOOPBACK, max_idle=2)
    try:
        async with RawServer(lambda _n: ok()) as srv:
            await asyncio.gather(*(pool.post(srv.url, b"{}", {}, timeout=2, keep=10) for _ in range(6)))
            assert srv.connections == 6 and len(pool._idle) == 2
    finally:
        await pool.close()


async def test_literal_addresses_are_checked_when_connecting() -> None:
    client = DeliveryClient(timeout=2.0, allow_loopback=False)
    pool = http.HttpPool(policy=ssrf.Policy(allow_loopback=False))
    try:
        async with RawServer(lambda _n: ok()) as srv:
            refused = await post(client, srv.url)
            assert (refused.error or "").startswith("refused:") and srv.requests == []  # type: ignore[attr-defined]
            with pytest.raises(ssrf.UnsafeURL, match="loopback"):  # the pool itself, without the shape check
                await pool.post(srv.url, b"{}", {}, timeout=2, keep=10)
    finally:
        await client.close()
        await pool.close()


async def test_checked_answers_are_shared_and_cached_per_host() -> None:
    calls: list[str] = []

    async def resolve(host: str, _port: int) -> list[str]:
        calls.append(host)
        await asyncio.sleep(0.05)
        return {"hooks.example": ["127.0.0.1"], "inside.example": ["10.0.0.1"]}[host]

    ssrf.set_resolver(resolve)
    pool = http.HttpPool(policy=LOOPBACK, max_idle=0)  # no idle connections: every post connects again
    try:
        async with RawServer(lambda _n: ok()) as srv:
            url = f"http://hooks.example:{srv.port}/h"
            await asyncio.gather(*(pool.post(url, b"{}", {}, timeout=2, keep=10) for _ in range(20)))
            await pool.post(url, b"{}", {}, timeout=2, keep=10)
            assert calls == ["hooks.example"] and srv.connections == 21
            with pytest.raises(ssrf.UnsafeURL, match="private address"):
                await pool.post(f"http://inside.example:{srv.port}/h", b"{}", {}, timeout=2, keep=10)
    finally:
        ssrf.set_resolver(None)
        await pool.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/a/b?c=d#e",
        "https://hooks.example.com:8443/x",
        "http://127.0.0.1:9000/e1",
        "http://127.0.0.1?@evil.example/x",
        "http://localhost/x",
        "http://example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/has space",
        "https://hooks.example.com/\ttab",
        "HTTPS://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://hooks.example.com:99999/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://10.0.0.1/x",
        "https://metadata.google.internal/x",
        "https://2130706433/x",
        "https://hooks.example.com/" + "a" * 2100,
        "https:///nohost",
        "https://[::1/x",
    ],
)
@pytest.mark.parametrize("loopback", [True, False])
def test_the_per_origin_check_agrees_with_the_full_check(url: str, loopback: bool) -> None:
    policy = ssrf.Policy(allow_loopback=loopback)

    def verdict(check: Callable[[str, ssrf.Policy], object]) -> str:
        try:
            check(url, policy)
        except ssrf.UnsafeURL as exc:
            return f"refused: {exc}"
        return "ok"

    assert verdict(static_check) == verdict(ssrf.static_check.__wrapped__)


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for localhost / 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(name("Kamiyo test CA"), name("Kamiyo test CA"), ca_key.public_key(), 1, start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder(ca.subject, name("localhost"), key.public_key(), 2, start, end)  # issuer, subject
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


async def test_https_checks_the_certificate_and_the_host_name(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    seen: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    trusting = DeliveryClient(timeout=2.0, allow_loopback=True, ssl_context=ssl.create_default_context(cafile=ca))
    default = DeliveryClient(timeout=2.0, allow_loopback=True)
    try:
        for host in ("localhost", "127.0.0.1"):
            results = [await post(trusting, f"https://{host}:{port}/tls") for _ in range(2)]
            assert [r.status for r in results] == [204, 204]  # type: ignore[attr-defined]
        untrusted = await post(default, f"https://localhost:{port}/tls")
        assert untrusted.status is None and "certificate verify failed" in (untrusted.error or "")  # type: ignore[attr-defined]
        assert seen == [b'{"x":1}'] * 4
    finally:
        await trusting.close()
        await default.close()
        await runner.cleanup()


@pytest.mark.parametrize(
    "raw",
    [
        ok(b"hello"),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 500 Oops\nContent-Length: 4\n\nboom",  # bare LF line ends
    ],
)
def test_answers_parse_the_same_whole_or_byte_by_byte(raw: bytes) -> None:
    whole, split = http_parser.Parser(keep=1024), http_parser.Parser(keep=1024)
    assert whole.feed(raw)
    assert [split.feed(raw[i : i + 1]) for i in range(len(raw))][-1]
    for parser in (whole, split):
        assert (parser.status, parser.body, parser.reusable) == (whole.status, whole.body, True)
    assert whole.status in (200, 201, 204, 500) and whole.body in (b"hello", b"abc", b"abcde", b"", b"boom")


def test_the_client_works_on_uvloop_as_under_kamiyo_serve() -> None:
    """uvicorn runs the embedded workers on uvloop, whose transports are not asyncio.Transport subclasses."""
    from http.server import BaseHTTPRequestHandler

    import uvloop

    from tests.support.services import http_server

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(202)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    async def post_twice(url: str) -> list[int | None]:
        client = DeliveryClient(timeout=5, allow_loopback=True)
        try:
            return [(await client.post(f"{url}/hook", b"{}", {}, now=NOW)).status for _ in range(2)]
        finally:
            await client.close()

    with http_server(Handler) as url:
        loop = uvloop.new_event_loop()
        try:
            assert loop.run_until_complete(post_twice(url)) == [202, 202]
        finally:
            loop.close()


def test_bytes_after_the_answer_make_the_connection_untrusted() -> None:
    """A second answer nobody asked for (or any bytes past the first): the first counts, the connection does not."""
    for extra in (ok(b"again"), b"junk"):
        parser = http_parser.Parser(keep=1024)
        assert parser.feed(ok(b"first") + extra)
        assert (parser.status, parser.body, parser.reusable) == (200, b"first", False)
    alone = http_parser.Parser(keep=1024)
    assert alone.feed(ok(b"first")) and alone.reusable


def test_headers_past_the_cap_are_refused_while_they_arrive() -> None:
    parser = http_parser.Parser(keep=1024)
    assert not parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(http_parser.ProtocolError, match="response headers too large"):
        for _ in range(100):  # never ends its headers
            parser.feed(b"X-Pad: " + b"a" * 1000 + b"\r\n")
