"""The outgoing HTTP client of the delivery worker: SSRF-guarded POSTs over kept-alive connections.

User-given URLs (webhooks, Discord and Slack webhook URLs) are checked twice: their shape and scheme
(`ssrf.static_check`, cached per origin) and the address actually connected to (`ssrf.resolve_checked`
inside the pool, on the host as parsed for the connection). Operator-configured APIs (the Telegram
base URL) use an unguarded pool. Redirects are never followed. The HTTP work is `delivery.http`, a
small HTTP/1.1 client measured at about a quarter of aiohttp's CPU per POST here.
"""

from __future__ import annotations

import functools
import re
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kamiyo.delivery.http import HttpPool, ProtocolError
from kamiyo.delivery.retry import RETRY_AFTER_STATUSES, parse_retry_after
from kamiyo.kit import ssrf

EXCERPT_BYTES = 1024
_ORIGIN = re.compile(r"https?://[^/?#]*")
_REFUSED_CHARS = re.compile(r"[\x00-\x20\x7f\s]")  # as ssrf refuses them; such URLs take the full check


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


@functools.lru_cache(maxsize=4096)
def _origin_check(origin: str, policy: ssrf.Policy) -> None:
    ssrf.static_check(origin, policy)


def static_check(url: str, policy: ssrf.Policy) -> None:
    """`ssrf.static_check`, done once per origin: 10,000 endpoints on one host cost one full check.

    Everything that check looks at besides length and characters (scheme, credentials, host, port) is
    in the origin, `scheme://netloc` exactly as `urlsplit` cuts it (netloc ends at the first / ? or #).
    """
    origin = _ORIGIN.match(url)
    if origin is None or len(url) > ssrf.MAX_URL_LENGTH or _REFUSED_CHARS.search(url):
        ssrf.static_check(url, policy)
    else:
        _origin_check(origin.group(), policy)


class DeliveryClient:
    """Two pools: guarded (user-given URLs) and plain (operator-configured APIs such as Telegram)."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_loopback: bool,
        concurrency: int = 200,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = ssrf.Policy(allow_loopback=allow_loopback)
        self.timeout = timeout
        self._guarded = HttpPool(policy=self.policy, max_idle=concurrency, ssl_context=ssl_context)
        self._plain = HttpPool(policy=None, max_idle=concurrency, ssl_context=ssl_context)

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], *, now: datetime, guarded: bool = True
    ) -> SendResult:
        """POST once; never raises for network or receiver problems (they become `error`)."""
        started = time.perf_counter()
        try:
            if guarded:
                static_check(url, self.policy)
            pool = self._guarded if guarded else self._plain
            answer = await pool.post(url, body, headers, timeout=self.timeout, keep=EXCERPT_BYTES)
            result = SendResult(status=answer.status, excerpt=answer.body.decode("utf-8", "replace") or None)
            if answer.status in RETRY_AFTER_STATUSES:
                result.retry_after = parse_retry_after(answer.headers.get("retry-after"), now)
            if not result.ok:
                result.error = f"HTTP {answer.status}"
        except ssrf.UnsafeURL as exc:
            result = SendResult(error=f"refused: {exc}"[:300])
        except TimeoutError:
            result = SendResult(error=f"timeout after {self.timeout:g} s")
        except (OSError, ProtocolError, ValueError) as exc:
            result = SendResult(error=_short(exc))
        result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return result

    async def post_json(self, url: str, payload: Any, *, now: datetime, guarded: bool = True) -> SendResult:
        from kamiyo.kit.jsonresp import dumps

        headers = {"content-type": "application/json", "user-agent": "Kamiyo-Alerts"}
        return await self.post(url, dumps(payload), headers, now=now, guarded=guarded)

    async def close(self) -> None:
        await self._guarded.close()
        await self._plain.close()
