"""CSRF protection for cookie-authenticated mutations (signed double submit).

The token is an HMAC, under the app secret, of a value only the browser's own cookies carry: the
session token when logged in (then only that one), else a random pre-session cookie (`kamiyo_csrf`,
set on the answer that first asked for a token). Another site can neither read those cookies nor compute
the HMAC, so a form or header carrying the right token proves the request came from our own pages. API-key requests need
no token: browsers never attach keys on their own.

Templates: `<input type="hidden" name="csrf_token" value="{{ csrf_token(request) }}">`;
scripts send the same value in the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

from kamiyo.accounts.sessions import app_secret, mac, session_token
from kamiyo.errors import KamiyoError

CSRF_COOKIE = "kamiyo_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class CsrfFailed(KamiyoError):
    status = 403
    code = "csrf_failed"


def csrf_token_for_session(request: Request, token: str) -> str:
    return mac(app_secret(request), "csrf", token)


def csrf_token(request: Request) -> str:
    """The token to embed in this page's forms (and to send back as `X-CSRF-Token`)."""
    token = session_token(request)
    if token:
        return csrf_token_for_session(request, token)
    pre: str | None = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "kamiyo_csrf_new", None)
    if not pre or len(pre) > 100:
        pre = secrets.token_urlsafe(24)
        request.state.kamiyo_csrf_new = pre  # the access middleware sets the cookie on the answer
    return mac(app_secret(request), "csrf-pre", pre)


def _expected(request: Request) -> str | None:
    """The one token this request may carry: bound to its session when there is one, so a pre-session
    token (whose cookie another site could plant, e.g. from a sibling subdomain) never authorises a
    logged-in browser's mutation; else bound to the pre-session cookie."""
    secret = app_secret(request)
    token = session_token(request)
    if token:
        return mac(secret, "csrf", token)
    pre = request.cookies.get(CSRF_COOKIE)
    if pre and len(pre) <= 100:
        return mac(secret, "csrf-pre", pre)
    return None


async def _sent_token(request: Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent:
        return sent
    if request.headers.get("content-type", "").split(";")[0].strip().lower() in _FORM_TYPES:
        try:
            form = await request.form()
        except Exception:  # a malformed body carries no token; the endpoint reports its own parse error
            return None
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def verify_csrf(request: Request) -> None:
    """Refuse (403 `csrf_failed`) an unsafe request whose token does not match this browser's cookies."""
    if request.method in SAFE_METHODS:
        return
    sent = await _sent_token(request)
    expected = _expected(request)
    if not sent or expected is None or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed("missing or wrong CSRF token: send the page's csrf_token field or X-CSRF-Token header")
