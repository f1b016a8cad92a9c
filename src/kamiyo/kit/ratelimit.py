"""Rate limits on the `limits` library's async storage: process memory, or Redis shared by every API process.

Also leases: a cap on things held at once (e.g. live-stream connections per user). A lease expires unless
renewed, so one whose process died or whose stream never started frees itself.

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
from typing import Any

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError
from redis.exceptions import RedisError

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


# KEYS[1] a sorted set of holder -> expiry; ARGV: now, cap, ttl seconds, holder. 1 when leased, 0 when full.
_LEASE_SCRIPT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return 1
"""
_LEASE_PREFIX = "kamiyo:lease:"


class LimitStore:
    """Counters and leases in Redis when configured and reachable, else in process memory."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.memory: MemoryStorage = SweepLimitedMemoryStorage()
        self.redis: Storage | None = None
        self._pool: object | None = None
        self._client: Any = None
        self._redis_down_until = 0.0
        self._leases: dict[str, dict[str, float]] = {}
        if redis_url:
            self.redis = self._redis_storage(redis_url)

    def _redis_storage(self, url: str) -> Storage:
        import redis.asyncio

        pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._pool = pool
        self._client = redis.asyncio.Redis(connection_pool=pool)
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

    def _redis_up(self) -> bool:
        return self._client is not None and time.monotonic() >= self._redis_down_until

    async def lease(self, key: str, holder: str, cap: int, ttl: float) -> bool:
        """Take one of `cap` places under `key` for `ttl` seconds (renew to keep it); False when all are taken."""
        now = time.time()
        if self._redis_up():
            try:
                leased = await self._client.eval(_LEASE_SCRIPT, 1, _LEASE_PREFIX + key, now, cap, ttl, holder)
                return bool(leased)
            except (TimeoutError, RedisError, OSError) as exc:
                self._failed(exc)
        held = self._leases.setdefault(key, {})
        for other in [h for h, expiry in held.items() if expiry <= now]:
            del held[other]
        if len(held) >= cap:
            return False
        held[holder] = now + ttl
        return True

    async def renew(self, key: str, holder: str, ttl: float) -> None:
        now = time.time()
        if self._redis_up():
            try:
                await self._client.zadd(_LEASE_PREFIX + key, {holder: now + ttl}, xx=True)
                await self._client.expire(_LEASE_PREFIX + key, int(ttl) + 1)
                return
            except (TimeoutError, RedisError, OSError) as exc:
                self._failed(exc)
        held = self._leases.get(key)
        if held is not None and holder in held:
            held[holder] = now + ttl

    async def release(self, key: str, holder: str) -> None:
        held = self._leases.get(key)
        if held is not None:
            held.pop(holder, None)
            if not held:
                del self._leases[key]
        if self._redis_up():
            try:
                await self._client.zrem(_LEASE_PREFIX + key, holder)
            except (TimeoutError, RedisError, OSError) as exc:
                self._failed(exc)

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
