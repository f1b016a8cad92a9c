"""Password login and signup flows, shared by the JSON API and the dashboard's forms.

Login attempts are throttled per client and e-mail (10 a minute: enough for typos, far too few for
guessing) and per client across e-mails (30 a minute, against trying one password on many accounts);
signups per client (10 an hour). Each attempt is counted before the password is checked, with one
atomic increment (process memory or Redis), and refused once over: concurrent attempts cannot all pass
a check made before any of them was counted. A client is an IPv4 address or an IPv6 /64. These throttles
stay on even with `KAMIYO_RATE_LIMITS=off`, which is for benchmarks only.
"""

from __future__ import annotations

import hashlib

from limits import RateLimitItem
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from kamiyo.accounts import service, sessions
from kamiyo.accounts.deps import RateLimited, get_limiter
from kamiyo.accounts.models import User
from kamiyo.errors import KamiyoError
from kamiyo.kit.clientip import client_identity
from kamiyo.kit.ratelimit import parse_rate

LOGIN_ATTEMPT_RATE = parse_rate("10/minute")  # per client and e-mail
LOGIN_CLIENT_RATE = parse_rate("30/minute")  # per client, whatever the e-mail
SIGNUP_RATE = parse_rate("10/hour")  # per client


class InvalidCredentials(KamiyoError):
    status = 401
    code = "invalid_credentials"


def _email_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


async def _count_attempt(request: Request, name: str, identity: str, rate: RateLimitItem, what: str) -> None:
    """Count this attempt first (atomically), then refuse it with 429 if it is over `rate`."""
    window = await get_limiter(request).hit(name, identity, rate)
    if not window.allowed:
        retry = window.retry_after()
        raise RateLimited(f"too many {what}; retry in {retry}s", headers={"Retry-After": str(retry)})


async def login_with_password(
    session: AsyncSession, request: Request, response: Response, email: str, password: str
) -> User:
    """Check the credentials (throttled), start a session and set its cookie on `response`."""
    client = client_identity(request.scope)
    await _count_attempt(request, "login-client", client, LOGIN_CLIENT_RATE, "login attempts from your address")
    account = f"{client}/{_email_digest(email)}"
    await _count_attempt(request, "login-attempts", account, LOGIN_ATTEMPT_RATE, "login attempts for this account")
    user = await service.authenticate(session, email, password)
    if user is None:
        raise InvalidCredentials("wrong e-mail or password")
    await sessions.login(session, request, response, user)
    return user


async def signup_with_password(
    session: AsyncSession, request: Request, response: Response, email: str, password: str
) -> User:
    """Create a free account and log it in (throttled per client)."""
    client = client_identity(request.scope)
    await _count_attempt(request, "signups", client, SIGNUP_RATE, "signups from your address")
    user = await service.create_user(session, email, password)
    await sessions.login(session, request, response, user)
    return user
