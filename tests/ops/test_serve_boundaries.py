"""`kamiyo serve` as operators run it: whose forwarded headers it believes, and how long a request head may take."""

from __future__ import annotations

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
