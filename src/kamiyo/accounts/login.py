"""Password login and signup flows, shared by the JSON API and the dashboard's forms.

Failed logins are throttled per client IP and e-mail (10 a minute): enough for typos, far too few
for guessing. The throttle stays on even with `KAMIYO_RATE_LIMITS=off`, which is for benchmarks only.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from kamiyo.accounts import service, sessions
from kamiyo.accounts.deps import RateLimited, get_limiter
from kamiyo.accounts.models import User
from kamiyo.accounts.ratelimit import parse_rate
from kamiyo.errors import KamiyoError
from kamiyo.kit.clientip import client_identity

LOGIN_FAILURE_RATE = parse_rate("10/minute")


class InvalidCredentials(KamiyoError):
    status = 401
    code = "invalid_credentials"


def _throttle_identity(request: Request, email: str) -> str:
    client = client_identity(request.scope)
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]
    return f"{client}/{digest}"


async def login_with_password(
    session: AsyncSession, request: Request, response: Response, email: str, password: str
) -> User:
    """Check the credentials (throttled), start a session and set its cookie on `response`."""
    limiter = get_limiter(request)
    identity = _throttle_identity(request, email)
    window = await limiter.peek("login-failures", identity, LOGIN_FAILURE_RATE)
    if window.count >= window.limit:
        raise RateLimited(
            f"too many failed logins; retry in {window.retry_after()}s",
            headers={"Retry-After": str(window.retry_after())},
        )
    user = await service.authenticate(session, email, password)
    if user is None:
        await limiter.hit("login-failures", identity, LOGIN_FAILURE_RATE)
        raise InvalidCredentials("wrong e-mail or password")
    await sessions.login(session, request, response, user)
    return user


async def signup_with_password(
    session: AsyncSession, request: Request, response: Response, email: str, password: str
) -> User:
    """Create a free account and log it in."""
    user = await service.create_user(session, email, password)
    await sessions.login(session, request, response, user)
    return user
