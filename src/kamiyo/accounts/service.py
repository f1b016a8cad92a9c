"""Users, passwords and API keys. Functions take a session and plain values and never commit.

Passwords are hashed with argon2id in a worker thread so the event loop keeps
serving. API keys are `kmy_` + 256 random bits: high-entropy, so a plain SHA-256 is the right stored
form (a slow hash would only slow every request); the first 12 characters are kept for lookup and display.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts.models import ApiKey, User
from kamiyo.db import QuickReader
from kamiyo.errors import Conflict, InvalidInput, NotFound
from kamiyo.kit.timeutil import as_utc, utcnow
from kamiyo.tiers import TIERS

PASSWORD_MIN = 10
PASSWORD_MAX = 1024
KEY_MARK = "kmy_"
KEY_PREFIX_LEN = 12  # "kmy_" + 8 random characters
MAX_ACTIVE_KEYS = 25
KEY_TOUCH_INTERVAL = timedelta(minutes=1)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): ~20-40 ms here, cheap enough for a 2-core server,
# far too dear for guessing. Hashes made with other parameters are upgraded at the next login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_dummy_hash: str | None = None


# ---------------------------------------------------------------- users and passwords


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidInput("email: not a valid e-mail address", details=[{"field": "email"}])
    return value


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(
            f"password: at least {PASSWORD_MIN} characters", details=[{"field": "password", "min": PASSWORD_MIN}]
        )
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(f"password: at most {PASSWORD_MAX} characters", details=[{"field": "password"}])


def generate_password() -> str:
    return secrets.token_urlsafe(18)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise InvalidInput(f"tier: one of {', '.join(TIERS)}", details=[{"field": "tier", "allowed": list(TIERS)}])
    return tier


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email.strip().lower()))
    return result.scalar_one_or_none()


async def list_users(session: AsyncSession, *, tier: str | None = None, limit: int = 1000) -> list[tuple[User, int]]:
    """Users newest first, each with the number of their active API keys."""
    active_keys = (
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == User.id, ApiKey.revoked_at.is_(None))
        .scalar_subquery()
    )
    stmt = select(User, active_keys).order_by(User.created_at.desc(), User.id.desc()).limit(limit)
    if tier is not None:
        stmt = stmt.where(User.tier == tier)
    return [(user, int(keys)) for user, keys in (await session.execute(stmt)).all()]


async def create_user(session: AsyncSession, email: str, password: str, *, tier: str = "free") -> User:
    """A new active user; 409 if the e-mail is taken, 422 for a short password or bad e-mail."""
    email = normalise_email(email)
    check_password(password)
    check_tier(tier)
    if await get_user_by_email(session, email) is not None:
        raise Conflict("an account with this e-mail already exists", code="email_taken")
    now = utcnow()
    user = User(
        email=email,
        password_hash=await hash_password(password),
        tier=tier,
        is_active=True,
        is_admin=False,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent signup with the same e-mail
        raise Conflict("an account with this e-mail already exists", code="email_taken") from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The user for these credentials, or None. Unknown e-mails cost the same argon2 time as wrong passwords."""
    global _dummy_hash
    user = await get_user_by_email(session, email)
    if user is None or not user.is_active:
        if _dummy_hash is None:
            _dummy_hash = await hash_password(secrets.token_urlsafe(16))
        await verify_password(_dummy_hash, password)
        return None
    if not await verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    return user


# ---------------------------------------------------------------- API keys


def generate_api_key() -> str:
    return KEY_MARK + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    return key.startswith(KEY_MARK) and KEY_PREFIX_LEN < len(key) <= 200


async def create_key(session: AsyncSession, user_id: int, name: str | None = None) -> tuple[ApiKey, str]:
    """A new key for the user; returns the row and the full key, which is never stored or shown again."""
    active = await session.execute(
        select(func.count()).select_from(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    if active.scalar_one() >= MAX_ACTIVE_KEYS:
        raise Conflict(f"at most {MAX_ACTIVE_KEYS} active keys; revoke one first", code="too_many_keys")
    raw = generate_api_key()
    key = ApiKey(
        user_id=user_id,
        name=(name or "").strip()[:100] or "default",
        prefix=raw[:KEY_PREFIX_LEN],
        key_hash=hash_api_key(raw),
        created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    return key, raw


async def list_keys(session: AsyncSession, user_id: int, *, include_revoked: bool = False) -> list[ApiKey]:
    """The user's active keys (and revoked ones, if asked), newest first."""
    stmt = select(ApiKey).where(ApiKey.user_id == user_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    result = await session.execute(stmt.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    return list(result.scalars())


async def revoke_key(session: AsyncSession, user_id: int, key_id: int) -> None:
    """Revoke one of the user's keys at once; another user's (or no) key is 404."""
    key = await session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise NotFound("no such key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()


async def revoke_key_by_prefix(session: AsyncSession, prefix: str) -> tuple[ApiKey, str]:
    """Revoke the one active key with this prefix (the operator's handle on a key); returns it and its owner's
    e-mail. An unknown prefix is 404, and one that names several active keys is refused (409)."""
    prefix = prefix.strip()
    if not prefix.startswith(KEY_MARK) or len(prefix) != KEY_PREFIX_LEN:
        raise InvalidInput(f"a key prefix is {KEY_MARK} and {KEY_PREFIX_LEN - len(KEY_MARK)} more characters")
    rows = (
        await session.execute(
            select(ApiKey, User.email)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        )
    ).all()
    if not rows:
        raise NotFound(f"no active key with prefix {prefix}")
    if len(rows) > 1:
        raise Conflict(f"{len(rows)} active keys share prefix {prefix}; revoke them from the owners' accounts")
    key, email = rows[0]
    key.revoked_at = utcnow()
    return key, str(email)


async def resolve_key(session: AsyncSession, raw: str) -> tuple[ApiKey, User] | None:
    """The active key and active user a presented key belongs to, or None. Compares hashes in constant time."""
    if not looks_like_key(raw):
        return None
    digest = hash_api_key(raw)
    rows = await session.execute(
        select(ApiKey, User)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.prefix == raw[:KEY_PREFIX_LEN], ApiKey.revoked_at.is_(None))
    )
    for key, user in rows:
        if hmac.compare_digest(key.key_hash, digest) and user.is_active:
            await _touch(session, key)
            return key, user
    return None


class TouchDue(Exception):
    """The key's use is due to be recorded (a write): resolve it through a session with `resolve_key`."""


@dataclass(frozen=True, slots=True)
class KeyOwner:
    key_id: int
    user_id: int
    email: str
    tier: str


@cache
def _key_lookup_sql() -> str:
    stmt = (
        select(ApiKey.id, ApiKey.key_hash, ApiKey.last_used_at, User.id, User.email, User.tier, User.is_active)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.prefix == bindparam("prefix"), ApiKey.revoked_at.is_(None))
    )
    return str(stmt.compile(dialect=sqlite_dialect.dialect()))


def resolve_key_on_loop(quick: QuickReader, raw: str) -> KeyOwner | None:
    """`resolve_key` on SQLite, read on the event loop: the same rows and rules, without aiosqlite's thread hops
    (each waits for a turn of a busy loop: 100-400 ms per keyed request under load). Raises TouchDue when the
    key's use is to be recorded, and sqlite3.Error when the read fails; the caller then takes `resolve_key`."""
    if not looks_like_key(raw):
        return None
    digest = hash_api_key(raw)
    for key_id, key_hash, last_used, user_id, email, tier, active in quick.fetch_all(
        _key_lookup_sql(), (raw[:KEY_PREFIX_LEN],)
    ):
        if hmac.compare_digest(key_hash, digest) and active:
            if last_used is None or utcnow() - as_utc(datetime.fromisoformat(last_used)) >= KEY_TOUCH_INTERVAL:
                raise TouchDue
            return KeyOwner(key_id, user_id, email, tier)
    return None


async def _touch(session: AsyncSession, key: ApiKey) -> None:
    """Record use at most once a minute per key, so a busy key does not write on every request."""
    now = utcnow()
    last: datetime | None = key.last_used_at
    if last is not None and now - last < KEY_TOUCH_INTERVAL:
        return
    cutoff = now - KEY_TOUCH_INTERVAL
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < cutoff))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
