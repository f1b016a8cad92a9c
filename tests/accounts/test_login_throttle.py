"""Login and signup throttles hold under concurrency: each attempt is counted before it is checked."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from sqlalchemy import func, select

from kamiyo.accounts.models import User
from kamiyo.db import Database
from tests.support.app import running
from tests.support.users import PASSWORD, add_user, settings_for
from tests.web.test_account_pages import post_form


@asynccontextmanager
async def clients(
    db_url: str, limit_env: dict[str, str], peer: str = "127.0.0.1"
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One app instance counting in memory, or two sharing one Redis (as two API processes would)."""
    instances = 2 if limit_env else 1
    async with AsyncExitStack() as stack:
        found = [
            (await stack.enter_async_context(running(settings_for(db_url, **limit_env), client=(peer, 1))))[1]
            for _ in range(instances)
        ]
        yield found


async def test_thirty_concurrent_wrong_passwords_get_exactly_ten_tries(db_url: str, limit_env: dict[str, str]) -> None:
    await add_user(db_url, "target@example.com")
    wrong = {"email": "target@example.com", "password": "not the password at all"}
    async with clients(db_url, limit_env) as cs:
        answers = await asyncio.gather(*(cs[n % len(cs)].post("/api/v1/auth/login", json=wrong) for n in range(30)))
        assert Counter(r.status_code for r in answers) == {401: 10, 429: 20}
        refused = next(r for r in answers if r.status_code == 429)
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
        right = await cs[0].post("/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD})
        assert right.status_code == 429  # the right password too, until the window ends
    async with clients(db_url, limit_env, peer="2001:db8:9::1") as cs:  # another client is not locked out
        right = await cs[0].post("/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD})
        assert right.status_code == 200


async def test_one_client_gets_thirty_logins_a_minute_across_emails(db_url: str, limit_env: dict[str, str]) -> None:
    async with clients(db_url, limit_env) as cs:
        answers = await asyncio.gather(
            *(
                cs[n % len(cs)].post("/api/v1/auth/login", json={"email": f"u{n}@example.com", "password": "x" * 12})
                for n in range(40)
            )
        )
        assert Counter(r.status_code for r in answers) == {401: 30, 429: 10}
        page = await post_form(cs[0], "/login", "/login", email="form@example.com", password="x" * 12)
        assert (
            page.status_code == 429 and "too many login attempts" in page.text.lower()
        )  # the dashboard form counts too
    async with clients(db_url, limit_env, peer="192.0.2.77") as cs:
        r = await cs[0].post("/api/v1/auth/login", json={"email": "u0@example.com", "password": "x" * 12})
        assert r.status_code == 401


async def test_signups_are_limited_per_client_across_api_and_form(db_url: str, limit_env: dict[str, str]) -> None:
    async with clients(db_url, limit_env) as cs:
        answers = await asyncio.gather(
            *(
                cs[n % len(cs)].post("/api/v1/auth/signup", json={"email": f"new{n}@example.com", "password": PASSWORD})
                for n in range(14)
            )
        )
        assert Counter(r.status_code for r in answers) == {201: 10, 429: 4}
        cs[0].cookies.clear()
        page = await post_form(cs[0], "/signup", "/signup", email="form@example.com", password=PASSWORD)
        assert page.status_code == 429 and "too many signups" in page.text.lower()
    db = Database(db_url)
    try:
        async with db.session() as session:
            made = await session.scalar(select(func.count()).where(User.email.like("new%@example.com")))
            assert made == 10
            assert await session.scalar(select(func.count()).where(User.email == "form@example.com")) == 0
    finally:
        await db.dispose()
    async with clients(db_url, limit_env, peer="192.0.2.78") as cs:
        r = await cs[0].post("/api/v1/auth/signup", json={"email": "elsewhere@example.com", "password": PASSWORD})
        assert r.status_code == 201
