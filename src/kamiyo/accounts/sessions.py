"""Dashboard sessions: a signed random token in an HttpOnly cookie, its SHA-256 in `user_sessions`.

The signature lets a forged or mangled cookie be refused without a database read; the row makes
logout real (the token stops working everywhere at once) and lets sessions expire server-side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import Response

from kamiyo.accounts.models import User, UserSession
from kamiyo.app_state import app_state
from kamiyo.kit.timeutil import utcnow

SESSION_COOKIE = "kamiyo_session"
SESSION_LIFETIME = timedelta(days=30)
TOUCH_INTERVAL = timedelta(minutes=5)


def app_secret(conn: HTTPConnection) -> bytes:
    """The process's signing secret (KAMIYO_SECRET_KEY or the generated one), read once per app."""
    state = app_state(conn)
    if state.secret is None:
        state.secret = state.settings.resolved_secret_key().encode()
    return state.secret


def mac(secret: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_token(secret: bytes, token: str) -> str:
    return f"{token}.{mac(secret, 'session', token)}"


def unsign_token(secret: bytes, value: str | None) -> str | None:
    if not value or len(value) > 200:
        return None
    token, _, signature = value.rpartition(".")
    if not token or not hmac.compare_digest(signature, mac(secret, "session", token)):
        return None
    return token


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_token(conn: HTTPConnection) -> str | None:
    """The verified session token of this request: one set during it (login), else the cookie's."""
    fresh: str | None = getattr(conn.state, "kamiyo_session_new", None)
    if fresh:
        return fresh
    return unsign_token(app_secret(conn), conn.cookies.get(SESSION_COOKIE))


async def create_session(session: AsyncSession, user_id: int) -> str:
    """A new server-side session; returns its raw token (goes only into the signed cookie)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        UserSession(
            user_id=user_id,
            token_hash=_hash(token),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            last_seen_at=now,
        )
    )
    await session.flush()
    return token


async def find_session(session: AsyncSession, token: str) -> tuple[UserSession, User] | None:
    """The live session and active user for a token, or None (revoked, expired, unknown)."""
    now = utcnow()
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == _hash(token), UserSession.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    user_session, user = row
    if user_session.expires_at <= now or not user.is_active:
        return None
    if now - user_session.last_seen_at >= TOUCH_INTERVAL:
        user_session.last_seen_at = now
    return user_session, user


async def revoke_session(session: AsyncSession, token: str) -> None:
    await session.execute(
        update(UserSession)
        .where(UserSession.token_hash == _hash(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def is_https(conn: HTTPConnection) -> bool:
    return conn.url.scheme == "https"


def set_session_cookie(conn: HTTPConnection, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sign_token(app_secret(conn), token),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(conn),
    )


def clear_session_cookie(conn: HTTPConnection, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(conn))


async def login(session: AsyncSession, conn: HTTPConnection, response: Response, user: User) -> str:
    """Start a dashboard session for an authenticated user and set its cookie on `response`.

    A session this browser already had is revoked, so a planted cookie cannot outlive the login.
    """
    previous = session_token(conn)
    if previous:
        await revoke_session(session, previous)
    token = await create_session(session, user.id)
    set_session_cookie(conn, response, token)
    conn.state.kamiyo_session_new = token
    return token


async def logout(session: AsyncSession, conn: HTTPConnection, response: Response) -> None:
    """Revoke this request's session (if any) and clear its cookie."""
    token = session_token(conn)
    if token:
        await revoke_session(session, token)
    clear_session_cookie(conn, response)
