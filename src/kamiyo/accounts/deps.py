"""Authentication and limit dependencies for routers (ours and other domains').

- `CurrentUser`: the user behind an API key (`Authorization: Bearer kmy_…` or `X-API-Key`) or a dashboard
  session cookie; 401 with `WWW-Authenticate: Bearer` otherwise. Cookie-authenticated POST/PATCH/PUT/DELETE
  must carry the CSRF token (403 `csrf_failed` if not); key-authenticated requests need none.
- `OptionalUser`: the same, or None (pages that work for visitors too).
- `Depends(per_user_limit(name, rate, what))`: a per-user rate limit (exports, submissions, webhook changes).
- `Depends(mutation_budget)`: 10 changes a minute per user, for the webhook and alert channel routes; a change
  refused as invalid or not allowed (400/403/409/422) gives its count back. `limit_webhook_mutations` is the
  bare count, for callers that are not dependencies.
- `Depends(require_feature("live_stream"))`: 403 unless the user's tier includes the feature.
- `Depends(per_user_limit(name, rate))`: a per-user rate limit (exports, submissions, webhook changes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from limits import RateLimitItem
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.accounts import service, sessions
from kamiyo.accounts.csrf import verify_csrf
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep
from kamiyo.app_state import app_state
from kamiyo.errors import KamiyoError
from kamiyo.kit.ratelimit import Limiter, Window, parse_rate
from kamiyo.tiers import Feature, Tier, get_tier

WEBHOOK_MUTATION_RATE = parse_rate("10/minute")


class Unauthorized(KamiyoError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        challenge = 'Bearer realm="kamiyo"' + (', error="invalid_token"' if invalid else "")
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class RateLimited(KamiyoError):
    status = 429
    code = "rate_limited"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: set by the access middleware for API keys, or resolved here from the session cookie."""

    user_id: int
    email: str
    tier: str
    via: Literal["key", "session"]
    key_id: int | None = None

    @property
    def tier_info(self) -> Tier:
        return get_tier(self.tier)


def api_key_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The presented API key (any Bearer token, X-API-Key value, or a `kmy_` key as HTTP Basic password, as
    TAXII clients send it, the user name being ignored), or None when none is presented. Other Basic
    credentials (a reverse proxy's own password) are not a key: they are left alone."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
            if scheme.lower() == "basic" and (key := _basic_key(token.strip())):
                return key
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    return None


def _basic_key(token: str) -> str | None:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    password = decoded.partition(":")[2].strip()
    return password if password.startswith(service.KEY_MARK) else None


def get_limiter(request: Request) -> Limiter:
    return app_state(request).limiter


async def _from_key(session: AsyncSession, raw: str) -> Principal:
    found = await service.resolve_key(session, raw)
    if found is None:
        raise Unauthorized("invalid or revoked API key", invalid=True)
    key, user = found
    return Principal(user.id, user.email, user.tier, "key", key.id)


async def optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The caller, or None for a visitor. An invalid key is still 401: it is never silently ignored."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    raw = api_key_from_headers(request.scope["headers"])
    if raw is not None:
        principal = await _from_key(session, raw)
        request.state.principal = principal
        return principal
    token = sessions.session_token(request)
    if token is None:
        return None
    found = await sessions.find_session(session, token)
    if found is None:
        return None
    _, user = found
    return Principal(user.id, user.email, user.tier, "session")


async def get_principal(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Principal:
    """The authenticated caller; 401 if none, 403 for a cookie-authenticated mutation without its CSRF token."""
    if principal is None:
        raise Unauthorized("authentication required: send an API key as `Authorization: Bearer kmy_…`")
    if principal.via == "session":
        await verify_csrf(request)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def current_user(principal: PrincipalDep, session: SessionDep) -> User:
    user = await session.get(User, principal.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("this account no longer exists or is disabled")
    return user


async def optional_user(
    principal: Annotated[Principal | None, Depends(optional_principal)], session: SessionDep
) -> User | None:
    if principal is None:
        return None
    user = await session.get(User, principal.user_id)
    return user if user is not None and user.is_active else None


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


def per_user_limit(
    name: str, rate: RateLimitItem, what: str
) -> Callable[[Request, Principal], Awaitable[Window | None]]:
    """A dependency counting each call against `rate` per user under `name` (429 with Retry-After beyond).

    Counted first, with one atomic increment, so concurrent requests cannot all pass a check made before
    any of them was counted. It answers the window counted in, or None when rate limits are off; pages
    call it directly with the session's `Principal`."""
    unit = rate.GRANULARITY.name
    per = f"{'an' if unit == 'hour' else 'a'} {unit}" if rate.multiples == 1 else f"per {rate.multiples} {unit}s"

    async def limit(request: Request, principal: PrincipalDep) -> Window | None:
        if not app_state(request).settings.rate_limits_enabled:
            return None
        window = await get_limiter(request).hit(name, str(principal.user_id), rate)
        if not window.allowed:
            raise RateLimited(
                f"at most {window.limit} {what} {per}; retry in {window.retry_after()}s",
                details={"limit": window.limit, "reset": window.reset},
                headers=window.headers(),
            )
        return window

    return limit


limit_webhook_mutations = per_user_limit("webhook-mutations", WEBHOOK_MUTATION_RATE, "webhook changes")
REFUNDED_STATUSES = frozenset({400, 403, 409, 422})


async def mutation_budget(request: Request, principal: PrincipalDep) -> AsyncIterator[None]:
    """The dependency form of `limit_webhook_mutations`: a refused change does not use up the budget."""
    window = await limit_webhook_mutations(request, principal)
    try:
        yield
    except (KamiyoError, RequestValidationError) as exc:
        status = exc.status if isinstance(exc, KamiyoError) else 422
        if window is not None and status in REFUNDED_STATUSES:
            limiter = get_limiter(request)
            await limiter.refund("webhook-mutations", str(principal.user_id), WEBHOOK_MUTATION_RATE, window)
        raise


def require_feature(feature: Feature) -> Callable[[PrincipalDep], Awaitable[None]]:
    """A dependency that answers 403 unless the caller's tier includes `feature`."""

    async def check(principal: PrincipalDep) -> None:
        tier = principal.tier_info
        if not tier.allows(feature):
            raise KamiyoError(
                f"{feature.replace('_', ' ')} needs the pro tier or higher (yours: {tier.name})",
                status=403,
                code="tier_required",
                details={"tier": tier.name, "feature": feature},
            )

    return check
