"""The limiter itself: clock-aligned windows, and an in-memory store that does not sweep on every hit."""

from __future__ import annotations

import asyncio
import time

from limits.aio.storage import MemoryStorage

from kamiyo.kit.ratelimit import DAY, Limiter, LimitStore, parse_rate


async def test_windows_are_aligned_to_the_clock_and_reset_on_time() -> None:
    limiter = Limiter(LimitStore())
    limiter.clock = time.time  # the real clock, unpinned: this test is about it
    item = parse_rate("2/second")
    while time.time() % 1 > 0.5:  # start early in a second so three hits share it
        await asyncio.sleep(0.05)
    windows = [await limiter.hit("t", "ip", item) for _ in range(3)]
    assert [w.allowed for w in windows] == [True, True, False]
    assert windows[0].reset == int(time.time()) + 1 and windows[2].retry_after() == 1
    await asyncio.sleep(windows[2].reset - time.time() + 0.01)
    assert (await limiter.hit("t", "ip", item)).count == 1


async def test_daily_window_resets_at_utc_midnight() -> None:
    window = await Limiter(LimitStore()).hit_daily("user", "1", 100)
    assert window.reset % DAY == 0 and 0 < window.reset - time.time() <= DAY
    assert window.headers() == {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "99",
        "X-RateLimit-Reset": str(window.reset),
    }


async def test_memory_store_sweeps_expired_keys_at_most_once_a_second() -> None:
    assert hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry")  # the hook we override still exists
    store = LimitStore()
    limiter = Limiter(store)
    item = parse_rate("1000/minute")
    await limiter.hit("t", "a", item)
    first_sweep = store.memory.timer
    for n in range(50):
        await asyncio.sleep(0)  # lets a finished sweep finish, as between requests
        await limiter.hit("t", f"ip{n}", item)
    assert store.memory.timer is first_sweep
    await store.close()
