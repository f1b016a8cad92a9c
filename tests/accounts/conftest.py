"""Fixtures of the accounts tests: a throw-away Redis, and limit storage parametrised over memory and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
    return {"KAMIYO_REDIS_URL": server.url}
