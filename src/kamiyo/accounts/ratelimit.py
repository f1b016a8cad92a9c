"""Rate limits on the `limits` library's async storage: process memory, or Redis shared by every API process.

Windows are fixed and aligned to the clock (a day window resets at UTC midnight, a minute window on the
minute), and the window number is part of the storage key. So one `incr` per request answers count,
remaining and reset at once, and a tier change keeps today's count. If Redis stops answering, counting
moves to process memory with a warning and Redis is tried again after `REDIS_RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 30.0
REDIS_TIMEOUT_SECONDS = 0.5
DAY = 86_400
SWEEP_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Window:
    """A counter after one request: how many were made in this window, of how many, and when it resets."""

    limit: int
    count: int
    reset: int  # unix seconds

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def retry_after(self, now: float | None = None) -> int:
        return max(1, self.reset - int(now if now is not None else time.time()))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after())
        return headers


def parse_rate(text: str) -> limits.RateLimitItem:
    """`60/minute`, `10 per minute`, `1000/day`: the `limits` notation."""
    return limits.parse(text)


class SweepLimitedMemoryStorage(MemoryStorage):
    """`limits`' in-process storage, sweeping expired counters at most once a second.

    The stock storage starts a sweep over every key on each increment: with 10,000 client IPs in a
    window that is about 3 ms of CPU per request. Reads already ignore expired counters, so the sweep
    only frees memory and need not run more often.
    """

    _next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # overrides MemoryStorage.__schedule_expiry
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_SECONDS
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]  # name-mangled private


class LimitStore:
    """Counters in Redis when configured and reachable, else in process memory."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.memory: MemoryStorage = SweepLimitedMemoryStorage()
        self.redis: Storage | None = None
        self._pool: object | None = None
        self._redis_down_until = 0.0
        if redis_url:
            self.redis = self._redis_storage(redis_url)

    def _redis_storage(self, url: str) -> Storage:
        import redis.asyncio

        pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._pool = pool
        return RedisStorage(
            f"async+{url}",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix="kamiyo",
            connection_pool=pool,  # type: ignore[arg-type]
        )

    @property
    def backend(self) -> str:
        return "redis" if self.redis is not None and time.monotonic() >= self._redis_down_until else "memory"

    def _failed(self, exc: BaseException) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.warning(
            "rate-limit storage Redis unreachable (%s); counting in process memory, retrying in %.0fs",
            type(exc).__name__,
            REDIS_RETRY_SECONDS,
        )

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self.redis.incr(key, expiry, amount)
            except (TimeoutError, StorageError, OSError) as exc:
                self._failed(exc)
        return await self.memory.incr(key, expiry, amount)

    async def get(self, key: str) -> int:
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self.redis.get(key)
            except (TimeoutError, StorageError, OSError) as exc:
                self._failed(exc)
        return await self.memory.get(key)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()  # type: ignore[attr-defined]
        timer = self.memory.timer
        if timer is not None and not timer.done():
            timer.cancel()


class Limiter:
    """Named fixed windows over a `LimitStore`."""

    # Which window a request falls in; tests pin it so a run never straddles a window boundary.
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, store: LimitStore) -> None:
        self.store = store

    @staticmethod
    def _bucket(seconds: int, now: float) -> tuple[int, int]:
        index = int(now // seconds)
        return index, (index + 1) * seconds

    async def hit(self, name: str, identity: str, item: limits.RateLimitItem, *, cost: int = 1) -> Window:
        """Count one request against `item` for `identity` (e.g. an IP or a user id)."""
        return await self._count(name, identity, item.amount, item.get_expiry(), cost)

    async def peek(self, name: str, identity: str, item: limits.RateLimitItem) -> Window:
        """The current window without counting."""
        return await self._count(name, identity, item.amount, item.get_expiry(), 0)

    async def refund(self, name: str, identity: str, item: limits.RateLimitItem, window: Window) -> None:
        """Give back one request counted by `hit` into `window` (e.g. a change that was refused)."""
        seconds = item.get_expiry()
        key = f"{name}/{identity}/{seconds}/{window.reset // seconds - 1}"
        await self.store.incr(key, max(1, window.reset - int(self.clock())) + 1, -1)

    async def hit_daily(self, name: str, identity: str, per_day: int, *, cost: int = 1) -> Window:
        """Count against a per-UTC-day allowance; resets at midnight UTC."""
        return await self._count(name, identity, per_day, DAY, cost)

    async def peek_daily(self, name: str, identity: str, per_day: int) -> Window:
        return await self._count(name, identity, per_day, DAY, 0)

    async def _count(self, name: str, identity: str, limit: int, seconds: int, cost: int) -> Window:
        now = self.clock()
        index, reset = self._bucket(seconds, now)
        key = f"{name}/{identity}/{seconds}/{index}"
        if cost:
            count = await self.store.incr(key, max(1, reset - int(now)) + 1, cost)
        else:
            count = await self.store.get(key)
        return Window(limit=limit, count=count, reset=reset)
