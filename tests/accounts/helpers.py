"""Helpers shared by the accounts and billing tests: a running app with its own client, users and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from kamiyo.accounts import service
from kamiyo.config import Settings
from kamiyo.db import Database
from tests.conftest import make_settings

SECRET = "test-secret-key-accounts-0123456789abcdef"
PASSWORD = "correct horse battery staple"


def settings_for(db_url: str, **env: Any) -> Settings:
    return make_settings(db_url, KAMIYO_SECRET_KEY=SECRET, **env)


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    routers: Iterable[APIRouter] = (),
    base_url: str = "http://testserver",
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real app (middleware, lifespan) behind an in-process client seen as coming from `client`."""
    from kamiyo.app import create_app

    app = create_app(settings)
    for router in routers:
        app.include_router(router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
            yield app, c


async def add_user(db_url: str, email: str, *, tier: str = "free", password: str = PASSWORD) -> int:
    db = Database(db_url)
    try:
        async with db.session() as session:
            user = await service.create_user(session, email, password, tier=tier)
            return user.id
    finally:
        await db.dispose()


async def add_key(db_url: str, user_id: int, name: str = "test") -> str:
    db = Database(db_url)
    try:
        async with db.session() as session:
            _, raw = await service.create_key(session, user_id, name)
            return raw
    finally:
        await db.dispose()


async def user_with_key(db_url: str, email: str, *, tier: str = "free") -> tuple[int, str]:
    user_id = await add_user(db_url, email, tier=tier)
    return user_id, await add_key(db_url, user_id)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def signup(c: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Sign up through the API; the client keeps the session cookie. Returns the answer (with csrf_token)."""
    r = await c.post("/api/v1/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body
