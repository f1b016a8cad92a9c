"""Rate limits shared through a real Redis by several app instances, and degraded to memory when it goes."""

from __future__ import annotations

import logging

import pytest

from tests.support.app import running
from tests.support.services import RedisServer, free_port
from tests.support.users import bearer, settings_for, user_with_key


async def test_two_app_instances_share_one_quota_through_redis(db_url: str, redis: RedisServer) -> None:
    _, key = await user_with_key(db_url, "shared@example.com")
    settings = settings_for(db_url, KAMIYO_REDIS_URL=redis.url)
    async with running(settings) as (_, a), running(settings) as (_, b):
        for n in range(50):
            assert (await a.get("/api/v1/me", headers=bearer(key))).status_code == 200
            r = await b.get("/api/v1/me", headers=bearer(key))
            assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == str(100 - 2 * (n + 1))
        assert (await a.get("/api/v1/me", headers=bearer(key))).status_code == 429
        assert (await b.get("/api/v1/me", headers=bearer(key))).status_code == 429


async def test_anonymous_limit_is_shared_across_instances(db_url: str, redis: RedisServer) -> None:
    settings = settings_for(db_url, KAMIYO_REDIS_URL=redis.url, KAMIYO_ANON_RATE_LIMIT="4/minute")
    async with running(settings) as (_, a), running(settings) as (_, b):
        assert [(await c.get("/exploits?page_size=1")).status_code for c in (a, b, a, b)] == [200] * 4
        assert (await a.get("/exploits?page_size=1")).status_code == 429


async def test_redis_going_down_degrades_to_memory_limits_with_a_warning(
    db_url: str, redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = await user_with_key(db_url, "down@example.com")
    settings = settings_for(db_url, KAMIYO_REDIS_URL=redis.url)
    async with running(settings) as (app, c):
        r = await c.get("/api/v1/me", headers=bearer(key))
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "99"
        assert app.state.limiter.store.backend == "redis"
        redis.stop()
        with caplog.at_level(logging.WARNING, logger="kamiyo.kit.ratelimit"):
            for expected in ("99", "98"):  # a fresh in-memory count
                r = await c.get("/api/v1/me", headers=bearer(key))
                assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == expected
            assert (await c.get("/exploits?page_size=1")).status_code == 200
        assert app.state.limiter.store.backend == "memory"
        warnings = [rec for rec in caplog.records if "Redis unreachable" in rec.getMessage()]
        assert len(warnings) == 1  # once, not per request, while the retry pause lasts


async def test_unreachable_redis_at_start_still_serves(db_url: str) -> None:
    settings = settings_for(db_url, KAMIYO_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    async with running(settings) as (_, c):
        r = await c.get("/exploits?page_size=1")
        assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "60"
