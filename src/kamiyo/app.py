"""create_app(): settings, middleware, one error shape, routers (root and /api/v1), lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kamiyo import __version__
from kamiyo.accounts.router import router as accounts_router
from kamiyo.accounts.setup import install_access, start_access, stop_access
from kamiyo.alerts.router import router as alerts_router
from kamiyo.app_state import AppState, app_state
from kamiyo.billing.router import router as billing_router
from kamiyo.body_limit import install_body_limit
from kamiyo.config import Settings, get_settings
from kamiyo.db import Database
from kamiyo.delivery import wakeup
from kamiyo.errors import install_error_handlers
from kamiyo.exploits.cache import response_cache
from kamiyo.exploits.export_router import router as export_router
from kamiyo.exploits.router import CachedHits
from kamiyo.exploits.router import router as exploits_router
from kamiyo.health import router as health_router
from kamiyo.ingest.router import router as sources_router
from kamiyo.intel.router import router as intel_router
from kamiyo.kit.clientip import ClientAddressMiddleware, TrustedProxies
from kamiyo.logging_setup import ensure_logging
from kamiyo.ops.inuse import ServerHold
from kamiyo.ops.middleware import install_observability
from kamiyo.ops.reporting import init_error_reporting
from kamiyo.stream.router import router as stream_router
from kamiyo.submissions.router import router as submissions_router
from kamiyo.tiers import tiers_markdown
from kamiyo.web.docs import install_docs
from kamiyo.web.setup import install_web
from kamiyo.webhooks.router import router as webhooks_router
from kamiyo.workers import Workers

DESCRIPTION = """
Kamiyo collects crypto and DeFi exploit incidents from public sources, merges the reports of one
incident into one record (keeping every source's report and when it came) and serves them.

Every public path is served at the root and, identically, under `/api/v1`. Errors always have the
shape `{"error": {"code", "message", "details"?}}`. Unknown query parameters are ignored; invalid
values answer 422.
"""


PUBLIC_ROUTERS = (health_router, exploits_router, sources_router)  # at the root and, identically, under /api/v1


def create_server_app() -> FastAPI:
    """The app of `kamiyo serve`: a long-lived process, so its startup objects are frozen out of the GC."""
    return create_app(freeze_gc=True)


def _lifespan(
    settings: Settings, database: Database | None, freeze_gc: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: the database (owned unless given), access, the workers, the stream hub."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_db = database is None
        state = app_state(app)
        hold = ServerHold(settings.database_url)  # a restore refuses while this server runs
        state.db = database or Database(settings.database_url)
        await start_access(app, settings)
        wakeup.install_session_hooks()  # API writes wake the delivery workers, here or elsewhere
        workers = Workers(state.db, settings)
        state.workers = workers.status
        on = settings.run_workers
        await workers.start(ingest=on, deliver=on, backups=on)
        if freeze_gc:
            # A full collection walks every tracked object: with the ~170k that the modules and startup leave,
            # that is a 100-600 ms pause of the event loop, every few seconds under load. Frozen, they are
            # never walked again (objects created later are collected as usual).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if state.stream_hub is not None:
                await state.stream_hub.stop()
            await workers.stop()
            await stop_access(app)
            if owns_db:
                await state.db.dispose()
            hold.release()

    return lifespan


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, freeze_gc: bool = False
) -> FastAPI:
    settings = settings or get_settings()
    ensure_logging(settings.log_level)
    init_error_reporting(settings)

    app = FastAPI(
        title="Kamiyo",
        version=__version__,
        description=DESCRIPTION + "\n## Tiers\n\n" + tiers_markdown(),
        lifespan=_lifespan(settings, database, freeze_gc),
        docs_url=None,  # install_docs: the same pages with assets from this server
        redoc_url=None,
    )
    app.state = AppState(settings)
    response_cache.interval = settings.response_cache_seconds
    response_cache.shared_dir = settings.data_dir / "cache"  # owner-only, beside the data (never a /tmp path)
    _install_middleware(app, settings)
    _include_routers(app)
    return app


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Error handlers and the middleware stack, innermost first."""
    install_error_handlers(app)
    app.add_middleware(CachedHits)  # added first, so inside the access layer
    install_access(app)  # API keys and rate limits, inside observability and CORS
    install_body_limit(app, settings.max_body_bytes)  # outside the access layer: no body is read before it
    install_observability(app)  # outermost: request ids, metrics, access log, GET /metrics
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"],
        )
    # Outermost: every layer inside sees the real client (a trusted proxy's forwarded one, else the peer).
    app.add_middleware(ClientAddressMiddleware, trusted=TrustedProxies(settings.trusted_proxy_networks))


def _include_routers(app: FastAPI) -> None:
    app.include_router(export_router)  # before the public routers: /api/v1/exploits/{ref} must not shadow it
    app.include_router(intel_router)  # STIX, TAXII 2.1 and MISP views of the public data
    for router in PUBLIC_ROUTERS:  # included one by one: each level of nesting costs every request a match
        app.include_router(router)
    for router in PUBLIC_ROUTERS:
        app.include_router(router, prefix="/api/v1", include_in_schema=False)
    app.include_router(accounts_router, prefix="/api/v1")
    app.include_router(billing_router, prefix="/api/v1")
    app.include_router(webhooks_router)
    app.include_router(alerts_router)
    app.include_router(stream_router)
    app.include_router(submissions_router)
    install_web(app)
    install_docs(app)
