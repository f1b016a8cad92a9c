"""The outgoing HTTP client of the delivery worker: aiohttp, SSRF-guarded at connect time.

aiohttp was chosen by measurement (about 17,000 POST/s at 100 concurrent requests against a local
receiver, against about 600/s for httpx on this machine). Its connector connects to exactly the
addresses our `GuardedResolver` returns after checking them; IP-literal hosts skip resolvers in
aiohttp, so they are checked here before each request. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from kamiyo.delivery.retry import RETRY_AFTER_STATUSES, parse_retry_after
from kamiyo.kit import ssrf

EXCERPT_BYTES = 1024


@dataclass(slots=True)
class SendResult:
    status: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None
    disable_reason: str | None = None  # set when the target must be disabled (410 Gone, deleted chat webhook)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class DeliveryClient:
    """Two pooled sessions: guarded (user-given URLs) and plain (operator-configured APIs such as Telegram)."""

    def __init__(self, *, timeout: float, allow_loopback: bool, concurrency: int = 200) -> None:
        self.policy = ssrf.Policy(allow_loopback=allow_loopback)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._concurrency = concurrency
        self._guarded: aiohttp.ClientSession | None = None
        self._plain: aiohttp.ClientSession | None = None

    def _session(self, guarded: bool) -> aiohttp.ClientSession:
        if guarded and self._guarded is None:
            connector = aiohttp.TCPConnector(
                resolver=ssrf.GuardedResolver(self.policy), use_dns_cache=False, limit=self._concurrency
            )
            self._guarded = aiohttp.ClientSession(connector=connector, timeout=self.timeout, trust_env=False)
        if not guarded and self._plain is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency)
            self._plain = aiohttp.ClientSession(connector=connector, timeout=self.timeout, trust_env=False)
        session = self._guarded if guarded else self._plain
        assert session is not None
        return session

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], *, now: datetime, guarded: bool = True
    ) -> SendResult:
        """POST once; never raises for network or receiver problems (they become `error`)."""
        started = time.perf_counter()
        try:
            if guarded:
                ssrf.static_check(url, self.policy)
            async with self._session(guarded).post(url, data=body, headers=headers, allow_redirects=False) as resp:
                raw = await resp.content.read(EXCERPT_BYTES)
                result = SendResult(status=resp.status, excerpt=raw.decode("utf-8", "replace") or None)
                if resp.status in RETRY_AFTER_STATUSES:
                    result.retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
                if not result.ok:
                    result.error = f"HTTP {resp.status}"
        except ssrf.UnsafeURL as exc:
            result = SendResult(error=f"refused: {exc}"[:300])
        except TimeoutError:
            result = SendResult(error=f"timeout after {self.timeout.total:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            result = SendResult(error=_short(exc))
        result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return result

    async def post_json(self, url: str, payload: Any, *, now: datetime, guarded: bool = True) -> SendResult:
        from kamiyo.kit.jsonresp import dumps

        headers = {"content-type": "application/json", "user-agent": "Kamiyo-Alerts"}
        return await self.post(url, dumps(payload), headers, now=now, guarded=guarded)

    async def close(self) -> None:
        for session in (self._guarded, self._plain):
            if session is not None:
                await session.close()
        self._guarded = self._plain = None
        await asyncio.sleep(0)
