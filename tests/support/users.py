"""The one user/key factory of the tests: accounts made through the real service, keys as Bearer headers."""

from __future__ import annotations

from typing import Any

import httpx

from kamiyo.accounts import service
from kamiyo.config import Settings
from kamiyo.db import Database
from tests.support.app import make_settings

SECRET = "test-secret-key-accounts-0123456789abcdef"
PASSWORD = "correct horse battery staple"


def settings_for(db_url: str, **env: Any) -> Settings:
    """Settings with a fixed secret key, for tests that sign sessions or CSRF tokens."""
    return make_settings(db_url, KAMIYO_SECRET_KEY=SECRET, **env)


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
