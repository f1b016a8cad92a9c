"""Signup, login, logout, the session cookie and CSRF, on real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from fastapi import APIRouter, Request
from sqlalchemy import select

from kamiyo.accounts import service as account_service
from kamiyo.accounts.csrf import csrf_token, verify_csrf
from kamiyo.accounts.models import User, UserSession
from kamiyo.db import Database
from tests.support.app import running
from tests.support.users import PASSWORD, PRODUCTION_HASHER, settings_for, signup


async def test_signup_logs_in_and_me_shows_account_tier_usage_and_limits(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        r = await c.post("/api/v1/auth/signup", json={"email": " Ada@Example.COM ", "password": PASSWORD})
        assert r.status_code == 201
        assert r.json()["user"]["email"] == "ada@example.com" and r.json()["user"]["tier"] == "free"
        cookie = r.headers["set-cookie"]
        assert "kamiyo_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower()  # plain http here
        me = (await c.get("/api/v1/me")).json()
        assert me["user"]["email"] == "ada@example.com" and me["tier"] == "free"
        assert me["limits"] == {
            "requests_per_day": 100,
            "webhooks": 0,
            "channels": 1,
            "live_stream": False,
            "export": False,
            "price_usd": 0,
        }
        # the session's own calls count against the account: this one is the first today
        assert me["usage"]["requests_today"] == 1 and me["usage"]["remaining"] == 99
        assert me["csrf_token"] == r.json()["csrf_token"]


async def test_session_cookie_is_secure_over_https(db_url: str) -> None:
    async with running(settings_for(db_url), base_url="https://testserver") as (_, c):
        r = await c.post("/api/v1/auth/signup", json={"email": "tls@example.com", "password": PASSWORD})
        assert "secure" in r.headers["set-cookie"].lower()


async def test_short_password_is_refused(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        r = await c.post("/api/v1/auth/signup", json={"email": "a@example.com", "password": "123456789"})
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "invalid" and "123456789" not in r.text
        r = await c.post("/api/v1/auth/signup", json={"email": "not-an-email", "password": PASSWORD})
        assert r.status_code == 422


async def test_second_signup_with_same_email_conflicts(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        await signup(c, "dup@example.com")
        r = await c.post("/api/v1/auth/signup", json={"email": "DUP@example.com", "password": PASSWORD})
        assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"


async def test_login_logout_and_the_old_cookie_stops_working(db_url: str, database: Database) -> None:
    async with running(settings_for(db_url)) as (_, c):
        await signup(c, "bo@example.com")
        c.cookies.clear()
        bad = await c.post("/api/v1/auth/login", json={"email": "bo@example.com", "password": "wrong password!"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_credentials"
        unknown = await c.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
        assert unknown.status_code == 401 and unknown.json() == bad.json()
        r = await c.post("/api/v1/auth/login", json={"email": "BO@example.com", "password": PASSWORD})
        assert r.status_code == 200 and r.json()["user"]["email"] == "bo@example.com"
        stolen = c.cookies["kamiyo_session"]
        assert (await c.get("/api/v1/me")).status_code == 200

        assert (await c.post("/api/v1/auth/logout")).status_code == 403  # cookie mutation without CSRF token
        out = await c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": r.json()["csrf_token"]})
        assert out.status_code == 204 and 'kamiyo_session=""' in out.headers["set-cookie"]
        c.cookies.clear()
        c.cookies.set("kamiyo_session", stolen)
        again = await c.get("/api/v1/me")
        assert again.status_code == 401 and again.headers["www-authenticate"].startswith("Bearer")
    async with database.session() as session:
        rows = (await session.execute(select(UserSession))).scalars().all()
        assert len(rows) == 2 and sum(r.revoked_at is not None for r in rows) == 1


async def test_forged_session_cookie_is_ignored(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        await signup(c, "cy@example.com")
        token = c.cookies["kamiyo_session"]
        c.cookies.clear()
        c.cookies.set("kamiyo_session", token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
        assert (await c.get("/api/v1/me")).status_code == 401


async def test_repeated_login_failures_are_throttled_per_ip_and_email(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        await signup(c, "dee@example.com")
        c.cookies.clear()
        wrong = {"email": "dee@example.com", "password": "not the password"}
        codes = [(await c.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(10)]
        assert codes == [401] * 10
        r = await c.post("/api/v1/auth/login", json={"email": "dee@example.com", "password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
    # another client address is not locked out by this one's failures
    async with running(settings_for(db_url), client=("10.9.8.7", 4000)) as (_, c):
        r = await c.post("/api/v1/auth/login", json={"email": "dee@example.com", "password": PASSWORD})
        assert r.status_code == 200


async def test_cookie_mutations_need_csrf_token_from_header_or_form_field(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        token = (await signup(c, "eve@example.com"))["csrf_token"]
        assert (await c.post("/api/v1/keys", json={"name": "x"})).status_code == 403
        wrong = await c.post("/api/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": token[:-1] + "x"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
        assert (await c.post("/api/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": token})).status_code == 201
        form = await c.post("/api/v1/auth/logout", data={"csrf_token": token})
        assert form.status_code == 204


async def test_anonymous_csrf_token_comes_with_its_cookie(db_url: str) -> None:
    """csrf_token(request) on a visitor's page sets the pre-session cookie the token is bound to."""
    router = APIRouter()

    @router.get("/test-form")
    async def form(request: Request) -> dict[str, str]:
        return {"token": csrf_token(request)}

    @router.post("/test-form")
    async def submit(request: Request) -> dict[str, bool]:
        await verify_csrf(request)
        return {"ok": True}

    async with running(settings_for(db_url), routers=[router]) as (_, c):
        r = await c.get("/test-form")
        assert "kamiyo_csrf=" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        token = r.json()["token"]
        assert (await c.get("/test-form")).json()["token"] == token  # stable while the cookie lives
        assert (await c.post("/test-form", data={"csrf_token": token})).status_code == 200
        assert (await c.post("/test-form", data={"csrf_token": "forged"})).status_code == 403
        c.cookies.clear()
        assert (await c.post("/test-form", data={"csrf_token": token})).status_code == 403


async def _stored_hash(database: Database, email: str) -> str:
    async with database.session() as session:
        return (await session.execute(select(User.password_hash).where(User.email == email))).scalar_one()


async def test_passwords_are_stored_as_argon2id_hashes_at_owasps_cost(
    db_url: str, database: Database, real_password_hashing: PasswordHasher
) -> None:
    async with running(settings_for(db_url)) as (_, c):
        await signup(c, "fay@example.com")
    stored = await _stored_hash(database, "fay@example.com")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and PASSWORD not in stored


async def test_a_login_upgrades_a_hash_made_at_another_cost(db_url: str, database: Database) -> None:
    async with running(settings_for(db_url)) as (_, c):
        await signup(c, "gus@example.com")  # hashed at the tests' cost
    cheap = await _stored_hash(database, "gus@example.com")
    assert not cheap.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(account_service, "_hasher", PRODUCTION_HASHER)
        async with running(settings_for(db_url)) as (_, c):
            r = await c.post("/api/v1/auth/login", json={"email": "gus@example.com", "password": PASSWORD})
            assert r.status_code == 200, r.text
    upgraded = await _stored_hash(database, "gus@example.com")
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PRODUCTION_HASHER.verify(upgraded, PASSWORD)
