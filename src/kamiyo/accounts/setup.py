"""Wiring for create_app(): the access middleware, and the limiter's life with the app."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from kamiyo.accounts.middleware import AccessMiddleware
from kamiyo.app_state import app_state
from kamiyo.config import Settings
from kamiyo.kit.ratelimit import Limiter, LimitStore, parse_rate

log = logging.getLogger(__name__)


def install_access(app: FastAPI) -> None:
    """Add the access middleware (call before CORS is added, so CORS wraps its 401/429 answers)."""
    app.add_middleware(AccessMiddleware)


DEFAULT_ANON_RATE = "60/minute"


async def start_access(app: FastAPI, settings: Settings) -> None:
    state = app_state(app)
    state.limiter = Limiter(LimitStore(settings.redis_url))
    try:
        state.anon_rate = parse_rate(settings.anon_rate_limit)
    except ValueError:
        log.error("KAMIYO_ANON_RATE_LIMIT is not a rate like `60/minute`; using %s", DEFAULT_ANON_RATE)
        state.anon_rate = parse_rate(DEFAULT_ANON_RATE)
    if settings.redis_url:
        log.info("rate limits counted in Redis (shared by every API process)")


async def stop_access(app: FastAPI) -> None:
    limiter: Limiter | None = getattr(app_state(app), "limiter", None)  # None: the start-up failed before it
    if limiter is not None:
        await limiter.store.close()
