"""Jinja2 environment, display filters and the one way a page is rendered (with its security headers)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kamiyo import __version__
from kamiyo.accounts.csrf import csrf_token
from kamiyo.accounts.models import User
from kamiyo.app_state import app_state
from kamiyo.kit.timeutil import as_utc, utcnow
from kamiyo.sources import REGISTRY
from kamiyo.tiers import get_tier
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS, TARGET_TYPES, Chain

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
ATTRIBUTION = "Incident data: DeFiHackLabs (Apache-2.0) and the sources listed on /app/sources"
# Pages use only their own stylesheet, script and inline SVG: nothing inline, nothing from elsewhere.
# (No form-action: the checkout and billing-portal forms redirect to Stripe.)
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def usd(value: float | None, *, empty: str = "unknown") -> str:
    """Compact dollars for reading at a glance: $1.2B, $340M, $12.5K, $900."""
    if value is None:
        return empty
    sign = "-" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= limit:
            scaled = value / limit
            text = f"{scaled:.1f}" if scaled < 100 else f"{scaled:.0f}"
            return f"{sign}${text.removesuffix('.0')}{suffix}"
    return f"{sign}${value:,.0f}"


def usd_full(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.0f}"


def moment(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return as_utc(value) if value else None
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def when(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    at = moment(value)
    return at.strftime(fmt) if at else "—"


def day(value: datetime | str | None) -> str:
    return when(value, "%Y-%m-%d")


def span(seconds: float) -> str:
    """A duration in the largest sensible unit: 45 s, 12 min, 3 h 5 min, 4 d."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours:.0f} h {rest // 60:.0f} min" if rest >= 60 else f"{hours:.0f} h"
    return f"{seconds // 86400:.0f} d"


def ago(value: datetime | str | None) -> str:
    at = moment(value)
    if at is None:
        return "never"
    delta = (utcnow() - at).total_seconds()
    return "just now" if 0 <= delta < 60 else (f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}")


def chain_name(slug: str) -> str:
    chain = CHAINS.get(slug)
    return chain.name if chain else slug


def category_name(slug: str) -> str:
    category = CATEGORIES.get(slug)
    return category.name if category else slug


def source_title(slug: str) -> str:
    info = REGISTRY.get(slug)
    return info.title if info else slug


def short_hash(value: str | None, keep: int = 8) -> str:
    if not value:
        return "—"
    return value if len(value) <= 2 * keep + 3 else f"{value[: keep + 2]}…{value[-keep:]}"


_BASE58 = "[1-9A-HJ-NP-Za-km-z]"
_FORMS = {  # (family, kind) -> what an explorer URL may carry
    ("evm", "address"): re.compile(r"0x[0-9a-fA-F]{40}"),
    ("evm", "tx"): re.compile(r"0x[0-9a-fA-F]{64}"),
    ("solana", "address"): re.compile(_BASE58 + "{32,44}"),
    ("solana", "tx"): re.compile(_BASE58 + "{64,88}"),
}
_PLAIN_ID = re.compile(r"[0-9A-Za-z]{16,128}")


def linkable(value: str | None, kind: str, chain: Chain | None) -> bool:
    """Whether `value` may go into the chain's explorer URL: it has the form of an address or transaction of the
    chain's family (another chain's hash or a stray path or query is shown, not linked)."""
    if not value or chain is None or not chain.explorer:
        return False
    form = _FORMS.get((chain.family, "tx" if kind == "tx" else "address"), _PLAIN_ID)
    return bool(form.fullmatch(value))


def target_name(slug: str | None) -> str:
    return TARGET_TYPES.get(slug or "", slug or "not stated")


@cache
def asset_version(name: str) -> str:
    """Content hash of a static file: its URL changes when it does, so it can be cached for a year."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/static/{name}?v={asset_version(name)}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    filters = (usd, usd_full, when, day, ago, span, chain_name, category_name, short_hash, source_title, target_name)
    env.filters.update({f.__name__: f for f in filters})  # each by its own name: `{{ amount|usd }}`
    env.tests.update(linkable=linkable)
    env.globals.update(
        {f.__name__: f for f in (static_url, csrf_token, app_state)},
        attribution=ATTRIBUTION,
        version=__version__,
        CHAINS=CHAINS,
        CATEGORIES=CATEGORIES,
        TARGET_TYPES=TARGET_TYPES,
    )
    return env


def account_html(request: Request, template: str, title: str, user: User, **context: Any) -> HTMLResponse:
    """A page of the user's account (keys, billing, webhooks, alerts): it shows their plan (`tier`)."""
    return render_html(request, template, title=f"{title} · Kamiyo", user=user, tier=get_tier(user.tier), **context)


def render_html(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the request's path (for the current nav item) and the page security headers."""
    context.setdefault("path", request.url.path)
    context.setdefault("user", None)
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
