"""Dashboard pages and their CSV count against the same anonymous or account limits as the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from tests.support.app import running
from tests.support.users import settings_for, signup


@asynccontextmanager
async def instances(
    db_url: str, limit_env: dict[str, str], **env: str
) -> AsyncIterator[list[tuple[Any, httpx.AsyncClient]]]:
    """One app counting in memory, or two sharing one Redis (two API processes)."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running(settings_for(db_url, **limit_env, **env)))
            for _ in range(2 if limit_env else 1)
        ]


async def test_pages_and_their_csv_share_the_anonymous_limit_with_the_api(
    db_url: str, limit_env: dict[str, str]
) -> None:
    async with instances(db_url, limit_env, KAMIYO_ANON_RATE_LIMIT="5/minute") as apps:
        a, b = apps[0][1], apps[-1][1]
        page = await a.get("/app/exploits")
        assert page.status_code == 200 and page.headers["x-ratelimit-remaining"] == "4"
        assert (await b.get("/exploits?page_size=1")).headers["x-ratelimit-remaining"] == "3"
        assert (await a.get("/app/exploits.csv?chain=ethereum")).status_code == 200
        assert (await b.get("/")).status_code == 200
        assert (await a.get("/api/v1/stats")).status_code == 200  # the fifth
        for client, path in ((b, "/app/exploits"), (a, "/app/exploits.csv"), (b, "/signup")):
            over = await client.get(path)
            assert over.status_code == 429 and over.headers["content-type"].startswith("text/html"), path
            assert 1 <= int(over.headers["retry-after"]) <= 60 and "rate limit" in over.text
        api = await a.get("/exploits?page_size=1")
        assert api.status_code == 429 and api.json()["error"]["code"] == "rate_limited"
        for path in ("/pricing", "/static/kamiyo.css", "/health"):  # the way to a higher plan, assets, health
            assert (await b.get(path)).status_code != 429, path


async def test_a_logged_in_users_pages_count_against_the_account(db_url: str, limit_env: dict[str, str]) -> None:
    async with instances(db_url, limit_env, KAMIYO_ANON_RATE_LIMIT="2/minute") as apps:
        (app, a), (_, b) = apps[0], apps[-1]
        user_id = (await signup(a, "pages@example.com"))["user"]["id"]  # 1 of the visitor's 2
        b.cookies = a.cookies
        for n, client in enumerate((a, b, a, b, a)):  # more pages than the visitor limit allows
            r = await client.get("/app/exploits" if n % 2 else "/app/keys")
            assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "100"
            assert r.headers["x-ratelimit-remaining"] == str(99 - n)
        me = (await a.get("/api/v1/me")).json()["usage"]
        assert me["requests_today"] == 6 and me["remaining"] == 94
        await app.state.limiter.hit_daily("user", str(user_id), 100, cost=94)  # the rest of today's quota
        over = await b.get("/app/exploits.csv")
        assert over.status_code == 429 and "daily quota of the free tier" in over.text
        assert (await a.get("/api/v1/me")).status_code == 429
        for path in ("/pricing", "/app/billing"):  # an upgrade stays possible
            assert (await b.get(path)).status_code == 200, path
        a.cookies.clear()
        assert (await a.get("/app/exploits")).status_code == 200  # as a visitor: the visitor's own limit
