"""The one user/key factory of the tests: accounts made through the real service, keys as Bearer headers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts import service
from kamiyo.config import Settings
from kamiyo.db import Database
from tests.support.app import make_settings

SECRET = "test-secret-key-accounts-0123456789abcdef"
PASSWORD = "correct horse battery staple"
PRODUCTION_HASHER = service._hasher  # read at import, before tests/conftest.py swaps in a cheap one
_emails = itertools.count()


def settings_for(db_url: str, **env: Any) -> Settings:
    """Settings with a fixed secret key, for tests that sign sessions or CSRF tokens."""
    return make_settings(db_url, KAMIYO_SECRET_KEY=SECRET, **env)


@asynccontextmanager
async def _opened(db: Database | str) -> AsyncIterator[AsyncSession]:
    """A session on the test's open database, or on one opened (and disposed) for this call."""
    database = db if isinstance(db, Database) else Database(db)
    try:
        async with database.session() as session:
            yield session
    finally:
        if database is not db:
            await database.dispose()


async def add_user(
    db: Database | str, email: str | None = None, *, tier: str = "free", password: str = PASSWORD
) -> int:
    async with _opened(db) as session:
        user = await service.create_user(session, email or f"user{next(_emails)}@example.com", password, tier=tier)
        return user.id


async def add_key(db: Database | str, user_id: int, name: str = "test") -> str:
    async with _opened(db) as session:
        _, raw = await service.create_key(session, user_id, name)
        return raw


async def user_with_key(db: Database | str, email: str | None = None, *, tier: str = "free") -> tuple[int, str]:
    """A user of `tier` (an e-mail made up when none is given) and an API key for it."""
    user_id = await add_user(db, email, tier=tier)
    return user_id, await add_key(db, user_id)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def signup(c: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Sign up through the API; the client keeps the session cookie. Returns the answer (with csrf_token)."""
    r = await c.post("/api/v1/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body
