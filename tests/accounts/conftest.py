"""Fixtures of the accounts tests: a throw-away Redis, and limit storage parametrised over memory and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kamiyo.kit import ratelimit
from tests.support.services import RedisServer, redis_server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def limit_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings that count limits in process memory, or in a real Redis shared by processes."""
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis")
    # A loaded test machine is not a Redis outage: give replies longer than the 0.5 s after which the app
    # counts in memory (that fallback has its own tests in test_redis_limits.py).
    request.getfixturevalue("monkeypatch").setattr(ratelimit, "REDIS_TIMEOUT_SECONDS", 5.0)
    return {"KAMIYO_REDIS_URL": server.url}
