"""API keys: shown once, stored hashed, listed by prefix, revoked at once; 401 and 404 rules."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from kamiyo.accounts.models import ApiKey
from kamiyo.db import Database
from tests.support.app import running
from tests.support.users import bearer, settings_for, signup, user_with_key

PROTECTED = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/1"),
    ("POST", "/api/v1/payments/checkout"),
    ("POST", "/api/v1/billing/portal"),
    ("GET", "/api/v1/subscriptions/me"),
]


async def test_key_is_shown_once_stored_hashed_and_listed_by_prefix(db_url: str, database: Database) -> None:
    async with running(settings_for(db_url)) as (_, c):
        csrf = (await signup(c, "kim@example.com"))["csrf_token"]
        r = await c.post("/api/v1/keys", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201
        created = r.json()
        key = created["key"]
        assert key.startswith("kmy_") and len(key) >= 40 and key.startswith(created["prefix"])
        listed = (await c.get("/api/v1/keys")).json()
        assert [k["id"] for k in listed] == [created["id"]] and listed[0]["name"] == "laptop"
        assert "key" not in listed[0] and key not in (await c.get("/api/v1/keys")).text
    async with database.session() as session:
        row = (await session.execute(select(ApiKey))).scalar_one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and row.prefix == key[:12]


async def test_bearer_and_x_api_key_both_authenticate_and_record_last_use(db_url: str, database: Database) -> None:
    _, key = await user_with_key(db_url, "lee@example.com")
    async with running(settings_for(db_url)) as (_, c):
        assert (await c.get("/api/v1/me", headers=bearer(key))).json()["user"]["email"] == "lee@example.com"
        assert (await c.get("/api/v1/me", headers={"X-API-Key": key})).status_code == 200
        listed = (await c.get("/api/v1/keys", headers=bearer(key))).json()
    assert listed[0]["last_used_at"] is not None


async def test_revoked_key_is_rejected_at_once(db_url: str) -> None:
    _, key = await user_with_key(db_url, "max@example.com")
    async with running(settings_for(db_url)) as (_, c):
        key_id = (await c.get("/api/v1/keys", headers=bearer(key))).json()[0]["id"]
        other = (await c.post("/api/v1/keys", headers=bearer(key), json={})).json()["key"]
        assert (await c.delete(f"/api/v1/keys/{key_id}", headers=bearer(other))).status_code == 204
        for path in ("/api/v1/me", "/exploits", "/api/v1/exploits"):
            r = await c.get(path, headers=bearer(key))
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await c.get("/api/v1/me", headers=bearer(other))).status_code == 200


@pytest.mark.reads_seed
@pytest.mark.input_matrix
@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_route_without_key_is_401_with_challenge(db_url: str, method: str, path: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        r = await c.request(method, path, json={"tier": "pro"} if method == "POST" else None)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthorized"
        bad = await c.request(method, path, headers=bearer("kmy_" + "x" * 43))
        assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
        assert "kmy_xxxx" not in bad.text


async def test_another_users_key_sees_only_its_own_objects(db_url: str) -> None:
    mine_id, mine = await user_with_key(db_url, "own@example.com")
    _, theirs = await user_with_key(db_url, "other@example.com")
    async with running(settings_for(db_url)) as (_, c):
        my_key_id = (await c.get("/api/v1/keys", headers=bearer(mine))).json()[0]["id"]
        me = (await c.get("/api/v1/me", headers=bearer(theirs))).json()
        assert me["user"]["email"] == "other@example.com" and me["user"]["id"] != mine_id
        their_keys = (await c.get("/api/v1/keys", headers=bearer(theirs))).json()
        assert my_key_id not in [k["id"] for k in their_keys]
        r = await c.delete(f"/api/v1/keys/{my_key_id}", headers=bearer(theirs))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await c.delete("/api/v1/keys/999999", headers=bearer(theirs))).status_code == 404
        assert (await c.get("/api/v1/me", headers=bearer(mine))).status_code == 200  # still valid


@pytest.mark.reads_seed
async def test_invalid_key_on_public_path_is_401_not_anonymous(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        assert (await c.get("/exploits?page_size=1")).status_code == 200
        for headers in (bearer("kmy_wrong"), {"X-API-Key": "nonsense"}, bearer("")):
            r = await c.get("/exploits?page_size=1", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert (await c.get("/health")).status_code in (200, 503)  # exempt paths do not look at keys


async def test_valid_key_on_public_path_raises_the_limit(db_url: str) -> None:
    _, key = await user_with_key(db_url, "pro@example.com", tier="pro")
    async with running(settings_for(db_url)) as (_, c):
        anon = await c.get("/exploits?page_size=1")
        keyed = await c.get("/api/v1/exploits?page_size=1", headers=bearer(key))
        assert anon.headers["x-ratelimit-limit"] == "60"
        assert keyed.status_code == 200 and keyed.headers["x-ratelimit-limit"] == "10000"


async def test_key_limit_per_user(db_url: str) -> None:
    _, key = await user_with_key(db_url, "many@example.com")
    async with running(settings_for(db_url)) as (_, c):
        codes = [(await c.post("/api/v1/keys", headers=bearer(key), json={})).status_code for _ in range(25)]
        assert codes[:24] == [201] * 24 and codes[24] == 409


async def test_on_sqlite_a_recorded_key_is_checked_without_a_pooled_connection(db_url: str, backend: str) -> None:
    """Each keyed request resolves its key. Through aiosqlite that read is several hops to a thread, each waiting
    for a turn of a busy loop (100-400 ms per keyed call under load); on SQLite it is read on the loop. Only the
    once-a-minute record of use still writes through a session; revoking and deactivating act at once."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL resolves keys through a session")
    from sqlalchemy import event, update

    from kamiyo.accounts.models import User

    user_id, key = await user_with_key(db_url, "quick@example.com")
    async with running(settings_for(db_url, KAMIYO_RESPONSE_CACHE_SECONDS=30)) as (app, c):  # hits: no query
        checkouts: list[object] = []
        event.listen(app.state.db.engine.sync_engine.pool, "checkout", lambda *a: checkouts.append(a))
        assert (await c.get("/exploits?page_size=1", headers=bearer(key))).status_code == 200
        assert len(checkouts) >= 1  # the first use is recorded (a write)
        checkouts.clear()
        for _ in range(3):
            r = await c.get("/exploits?page_size=1", headers=bearer(key))
            assert r.status_code == 200 and r.headers["x-ratelimit-remaining"]
        assert checkouts == []
        async with app.state.db.session() as session:
            await session.execute(update(User).where(User.id == user_id).values(is_active=False))
        assert (await c.get("/exploits?page_size=1", headers=bearer(key))).status_code == 401
        assert (await c.get("/exploits?page_size=1", headers=bearer(key[:-1] + "x"))).status_code == 401
