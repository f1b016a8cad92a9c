"""A cap on concurrent `/api/v1/stream` connections per account, in one process and across processes via Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from kamiyo.db import Database
from kamiyo.kit.ratelimit import LimitStore
from tests.accounts.conftest import limit_env, redis  # noqa: F401  (fixtures)
from tests.delivery.support import auth, delivery_settings
from tests.stream.test_stream import Events, serving
from tests.support.users import user_with_key


@asynccontextmanager
async def opened(c: httpx.AsyncClient, key: str) -> AsyncIterator[httpx.Response]:
    async with c.stream("GET", "/api/v1/stream", headers=auth(key)) as r:
        if r.status_code == 200:
            events = Events(r)  # kept while the stream is open: dropping its reader would close the response
            await events.next(5)  # the first lines: the server holds the place now
            r.extensions["events"] = events
        else:
            await r.aread()
        yield r


async def test_an_account_holds_at_most_its_cap_of_streams(db_url: str, limit_env: dict[str, str]) -> None:  # noqa: F811
    settings = delivery_settings(db_url, KAMIYO_STREAM_MAX_PER_USER=2, KAMIYO_STREAM_HEARTBEAT=0.3, **limit_env)
    instances = 2 if limit_env else 1  # with Redis, two API processes share the cap
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(serving(settings)) for _ in range(instances)]
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=10)) for base, _ in servers]
        db: Database = servers[0][1]
        _, key = await user_with_key(db, tier="pro")
        _, other = await user_with_key(db, tier="pro")
        async with opened(clients[0], key) as one, opened(clients[-1], key) as two:
            assert one.status_code == two.status_code == 200
            async with opened(clients[0], key) as three, opened(clients[-1], key) as four:
                for over in (three, four):
                    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
                    assert "2 live streams" in over.json()["error"]["message"] and over.headers["retry-after"]
            async with opened(clients[-1], other) as theirs:
                assert theirs.status_code == 200  # another account has its own places
        for _ in range(50):  # closed streams give their places back
            async with opened(clients[-1], key) as again, opened(clients[0], key) as also:
                if again.status_code == also.status_code == 200:
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the places of closed streams were not given back")


async def test_a_lease_nobody_renews_lapses(limit_env: dict[str, str]) -> None:  # noqa: F811
    store = LimitStore(limit_env.get("KAMIYO_REDIS_URL"))
    try:
        assert await store.lease("stream/1", "a", 1, 0.4)
        assert not await store.lease("stream/1", "b", 1, 0.4)
        await asyncio.sleep(0.25)
        await store.renew("stream/1", "a", 0.4)  # renewed: still held after the first term
        await asyncio.sleep(0.25)
        assert not await store.lease("stream/1", "b", 1, 0.4)
        await asyncio.sleep(0.45)  # a process that died renews nothing
        assert await store.lease("stream/1", "b", 1, 0.4)
        await store.release("stream/1", "b")
        assert await store.lease("stream/1", "c", 1, 0.4)
    finally:
        await store.close()
