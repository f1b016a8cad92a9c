"""create_app(): settings, middleware, one error shape, routers (root and /api/v1), lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kamiyo import __version__
from kamiyo.config import Settings, get_settings
from kamiyo.db import Database
from kamiyo.errors import install_error_handlers
from kamiyo.exploits.cache import response_cache
from kamiyo.exploits.router import router as exploits_router
from kamiyo.health import router as health_router
from kamiyo.ingest.router import router as sources_router

DESCRIPTION = """
Kamiyo collects crypto and DeFi exploit incidents from public sources, merges the reports of one
incident into one record (keeping every source's report and when it came) and serves them.

Every public path is served at the root and, identically, under `/api/v1`. Errors always have the
shape `{"error": {"code", "message", "details"?}}`. Unknown query parameters are ignored; invalid
values answer 422.
"""


def public_router() -> APIRouter:
    router = APIRouter()
    router.include_router(health_router)
    router.include_router(exploits_router)
    router.include_router(sources_router)
    return router


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_db = database is None
        app.state.db = database or Database(settings.database_url)
        app.state.workers = {"ingest": "off", "delivery": "off"}
        try:
            yield
        finally:
            if owns_db:
                await app.state.db.dispose()

    app = FastAPI(
        title="Kamiyo",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    response_cache.ttl = settings.response_cache_seconds
    install_error_handlers(app)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"],
        )
    app.include_router(public_router())
    app.include_router(public_router(), prefix="/api/v1", include_in_schema=False)
    return app
