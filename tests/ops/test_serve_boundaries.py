"""`kamiyo serve` as operators run it: whose forwarded headers it believes, and how long a request head may take."""

from __future__ import annotations

import itertools
import select
import socket
import time
from pathlib import Path

import httpx

from tests.ops.test_live_server import serve


def test_serve_ignores_forwarded_for_from_loopback_unless_trusted(tmp_path: Path) -> None:
    """uvicorn alone believes X-Forwarded-For from 127.0.0.1: a client behind nothing could reset its own limit."""
    with serve(tmp_path, KAMIYO_ANON_RATE_LIMIT="3/day") as (base, _):
        codes = [
            httpx.get(f"{base}/exploits", headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=10).status_code
            for n in range(4)
        ]
    assert codes == [200, 200, 200, 429]
    with serve(tmp_path, KAMIYO_ANON_RATE_LIMIT="3/day", KAMIYO_TRUSTED_PROXIES="127.0.0.1") as (base, _):
        codes = [
            httpx.get(f"{base}/exploits", headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=10).status_code
            for n in range(4)
        ]
    assert codes == [200] * 4  # four clients behind a trusted proxy


def _trickle(
    port: int, head: bytes, *, first: bytes = b"", every: float = 0.1, limit: float = 6.0, repeat: bool = True
) -> tuple[bytes, float]:
    """Send `first`, then `head` a byte every `every` s (over and over, or once and then wait with `repeat=False`:
    bytes sent after the answer would make the server reset the connection); (the answer, seconds until closed)."""
    started = time.monotonic()
    received = b""
    pending = itertools.cycle(head) if repeat else iter(head)
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(first)
        while time.monotonic() - started <= limit:
            ready, _, _ = select.select([sock], [], [], every)
            if ready:
                chunk = sock.recv(65536)
                received += chunk
                if not chunk:
                    return received, time.monotonic() - started
                continue
            byte = next(pending, None)
            if byte is None:
                continue  # all sent: wait for the answer
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
    return received, time.monotonic() - started


def test_a_request_head_must_arrive_within_the_header_timeout(tmp_path: Path) -> None:
    with serve(tmp_path, KAMIYO_HEADER_TIMEOUT="0.5") as (base, _):
        port = int(base.rsplit(":", 1)[1])
        # slowloris: a never-ending head, a byte every 0.1 s, is cut off after about 0.5 s with a 408
        answer, took = _trickle(port, b"X-Slow: abcdefghijklmnopqrstuvwxyz\r\n", first=b"GET /ping HTTP/1.1\r\n")
        assert answer.startswith(b"HTTP/1.1 408") and 0.4 <= took < 2.5, (answer, took)
        # a connection that sends nothing is closed too
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            assert sock.recv(100) == b"" and time.monotonic() - started < 2.5
        # after a complete answer, the next head on the same connection has its own deadline
        ping = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"
        answer, took = _trickle(port, b"X-Slow: abcdefghijklmnopqrstuvwxyz\r\n", first=ping + b"GET /ping HTTP/1.1\r\n")
        assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1 ") == 2 and b"408" in answer
        # the deadline is for the head only: a body may take longer, and a prompt head is answered
        body = b'{"email": "slow@example.com", "password": "not the right one"}'
        head = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        answer, took = _trickle(port, body, first=head, every=0.03, repeat=False)
        assert answer.startswith(b"HTTP/1.1 401") and took > 1.0, (answer[:40], took)
        assert httpx.get(f"{base}/ping", timeout=5).status_code == 200
