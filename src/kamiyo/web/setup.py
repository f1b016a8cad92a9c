"""Wire the dashboard into the app: static files with cache headers, page routes, HTML error pages."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from kamiyo.app_state import app_state
from kamiyo.web.account_pages import router as account_router
from kamiyo.web.admin_pages import router as admin_router
from kamiyo.web.alert_pages import router as alert_router
from kamiyo.web.legal_pages import router as legal_router
from kamiyo.web.page_deps import install_page_deps
from kamiyo.web.render import STATIC_DIR, render_html
from kamiyo.web.router import router
from kamiyo.web.webhook_pages import router as webhook_router

log = logging.getLogger(__name__)
PAGE_PATHS = frozenset({"/", "/pricing", "/login", "/signup", "/logout", "/terms", "/privacy"})
TITLES = {404: "Page not found", 422: "Invalid request", 429: "Too many requests", 503: "Temporarily unavailable"}


class CachedStatic(StaticFiles):
    """Static files are addressed by content hash (`?v=`), so browsers may keep them for a year."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def is_page_path(path: str) -> bool:
    """Browser pages get HTML error pages; every other path (the API) keeps the JSON error shape."""
    return path in PAGE_PATHS or path.startswith(("/app/", "/pricing/")) or path == "/app"


def html_error(request: Request, status: int, code: str, message: str) -> Response | None:
    if not is_page_path(request.url.path):
        return None
    try:
        return render_html(
            request,
            "error.html",
            status=status,
            title=f"{TITLES.get(status, 'Something went wrong')} · Kamiyo",
            heading=TITLES.get(status, "Something went wrong"),
            status_code=status,
            code=code,
            message=message if status < 500 else "The server could not answer this page. Please try again.",
        )
    except Exception:  # an error page must never fail harder than the error it reports
        log.exception("could not render the HTML error page")
        return None


def install_web(app: FastAPI) -> None:
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    install_page_deps(app)
    app.include_router(router)
    app.include_router(account_router)
    app.include_router(admin_router)
    app.include_router(webhook_router)
    app.include_router(alert_router)
    app.include_router(legal_router)
    app_state(app).html_error_renderer = html_error
