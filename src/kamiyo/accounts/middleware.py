"""Pure-ASGI access middleware: API-key authentication and rate limits in front of every API route and page.

Per request it classifies the path (no allocation for exempt paths), then:
- a presented API key is resolved (one indexed query, no cache, so revocation and tier changes apply at
  once); an invalid key answers 401 even on public paths; a valid one counts against the user's daily
  tier quota;
- no key but a dashboard session cookie: the session's account is resolved and counted the same way (the
  principal is kept for the route, which then does not look it up again);
- neither: the request counts against the per-client anonymous limit (an IPv4 address or an IPv6 /64);
- answers carry `X-RateLimit-Limit/Remaining/Reset`; over the limit, 429 with `Retry-After`.
The public data paths, `/api/v1/*` and the dashboard pages with their CSV all count, so a page is no way
around the API's limits. Health, metrics, docs, OpenAPI, static files and the Stripe webhook are never
counted, nor the pages that lead out of a used-up quota (pricing, billing, logout). Pages get their
errors as HTML, the API as JSON.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kamiyo.accounts import service, sessions
from kamiyo.accounts.csrf import CSRF_COOKIE
from kamiyo.accounts.deps import Principal, api_key_from_headers
from kamiyo.app_state import app_state
from kamiyo.errors import error_body
from kamiyo.kit.clientip import client_identity
from kamiyo.kit.jsonresp import FastJSONResponse
from kamiyo.kit.ratelimit import Window
from kamiyo.tiers import get_tier

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
EXEMPT_PATHS = frozenset(
    {
        "/health",
        "/ping",
        "/metrics",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/favicon.ico",
        "/robots.txt",
        f"{API_PREFIX}/health",
        f"{API_PREFIX}/ping",
        f"{API_PREFIX}/metrics",
        f"{API_PREFIX}/payments/stripe-webhook",
    }
)
EXEMPT_PREFIXES = ("/static/", "/docs/", "/docs-assets/", "/pricing", "/app/billing")  # the last two: the way up
EXEMPT_PAGES = frozenset({"/logout"})
# First segments of the public data paths served at the root (app.PUBLIC_ROUTERS, and TAXII discovery);
# under /api/v1 all count.
PUBLIC_ROOTS = frozenset({"exploits", "stats", "chains", "sources", "feed.xml", "taxii2"})
EXEMPT, LIMITED, PAGE = 0, 1, 2
_RATE_HEADER = b"x-ratelimit-limit"


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _classify(path: str) -> int:
        if path in EXEMPT_PATHS or path in EXEMPT_PAGES or path.startswith(EXEMPT_PREFIXES):
            return EXEMPT
        if path.startswith(API_PREFIX + "/") or path[1:].partition("/")[0] in PUBLIC_ROOTS:
            return LIMITED
        return PAGE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        kind = self._classify(scope["path"])
        if kind == EXEMPT:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        outcome = await self._admit(app, scope, state, page=kind == PAGE)
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        await self.app(scope, receive, _decorating_send(send, state, outcome, scope))

    async def _admit(self, app: Any, scope: Scope, state: dict[str, Any], *, page: bool) -> Window | Response | None:
        """Authenticate a presented key or session and count the request: the window, or the error answer."""
        shared = app_state(app)
        settings, limiter = shared.settings, shared.limiter
        raw_key = api_key_from_headers(scope["headers"])
        principal: Principal | None = None
        if raw_key is not None:
            try:
                principal = await _resolve(app, raw_key)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("API key check: database unavailable: %s", type(exc).__name__)
                return _error(scope, page, 503, "database_unavailable", "the database is unavailable")
            if principal is None:
                return _error(
                    scope,
                    page,
                    401,
                    "unauthorized",
                    "invalid or revoked API key",
                    {"WWW-Authenticate": 'Bearer realm="kamiyo", error="invalid_token"'},
                )
        else:
            principal = await _session_principal(app, scope)
        if principal is not None:
            state["principal"] = principal
            if not settings.rate_limits_enabled:
                return None
            tier = get_tier(principal.tier)
            window = await limiter.hit_daily("user", str(principal.user_id), tier.requests_per_day)
            message = f"daily quota of the {tier.name} tier ({tier.requests_per_day:,} requests) used up"
        else:
            if not settings.rate_limits_enabled:
                return None
            window = await limiter.hit("anon", client_identity(scope), shared.anon_rate)
            message = "anonymous rate limit reached; an API key raises the limit"
        if not window.allowed:
            details = {"limit": window.limit, "reset": window.reset}
            text = f"{message}; retry in {window.retry_after()}s"
            return _error(scope, page, 429, "rate_limited", text, window.headers(), details)
        return window


async def _resolve(app: Any, raw_key: str) -> Principal | None:
    db = app_state(app).db
    quick = db.quick
    if quick is not None:
        try:
            owner = service.resolve_key_on_loop(quick, raw_key)
        except (service.TouchDue, sqlite3.Error):
            pass  # recorded, or read, through a session below
        else:
            return None if owner is None else Principal(owner.user_id, owner.email, owner.tier, "key", owner.key_id)
    async with db.session() as session:
        found = await service.resolve_key(session, raw_key)
    if found is None:
        return None
    key, user = found
    return Principal(user.id, user.email, user.tier, "key", key.id)


async def _session_principal(app: Any, scope: Scope) -> Principal | None:
    """The account of a valid dashboard session cookie, or None (no cookie, a forged, expired or revoked one)."""
    conn = HTTPConnection(scope)
    token = sessions.session_token(conn) if sessions.SESSION_COOKIE in conn.cookies else None
    if token is None:
        return None
    try:
        async with app_state(app).db.session() as session:
            found = await sessions.find_session(session, token)
    except (SQLAlchemyError, OSError) as exc:  # counted as a visitor; the page reports the database itself
        log.warning("session check: database unavailable: %s", type(exc).__name__)
        return None
    if found is None:
        return None
    _, user = found
    return Principal(user.id, user.email, user.tier, "session")


def _error(
    scope: Scope,
    page: bool,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: Any = None,
) -> Response:
    """The error answer: the dashboard's HTML error page on pages, the JSON error shape elsewhere."""
    renderer = app_state(scope["app"]).html_error_renderer if page else None
    if renderer is not None:
        response: Response | None = renderer(Request(scope), status, code, message)
        if response is not None:
            response.headers.update(headers or {})
            return response
    return FastJSONResponse(error_body(code, message, details), status, headers=headers)


def _csrf_cookie_header(scope: Scope, value: str) -> tuple[bytes, bytes]:
    response = Response()
    response.set_cookie(
        CSRF_COOKIE,
        value,
        max_age=86_400 * 30,
        path="/",
        httponly=True,
        samesite="lax",
        secure=scope.get("scheme") == "https",
    )
    return response.raw_headers[-1]


def _decorating_send(send: Send, state: dict[str, Any], window: Window | None, scope: Scope) -> Send:
    """Adds the rate-limit headers (unless a route set its own) and a pending CSRF pre-session cookie."""

    async def decorated(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if window is not None and not any(name.lower() == _RATE_HEADER for name, _ in headers):
                headers += [(k.lower().encode(), v.encode()) for k, v in window.headers().items()]
            pending = state.get("kamiyo_csrf_new")
            if pending:
                headers.append(_csrf_cookie_header(scope, pending))
            message = {**message, "headers": headers}
        await send(message)

    return decorated
