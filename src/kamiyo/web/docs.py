"""`/docs` (Swagger UI) and `/redoc` with every asset served by this process: no CDN, no web fonts.

The JavaScript and CSS come from the `fastapi-offline` package (Swagger UI, Apache-2.0; Redoc, MIT; their licence
texts ship inside the files), mounted at `/docs-assets/` under a versioned URL so browsers may cache them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import metadata, resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from kamiyo.web.render import static_url
from kamiyo.web.setup import CachedStatic

ASSETS_PATH = "/docs-assets"
ASSETS_DIR = Path(str(resources.files("fastapi_offline") / "static"))
_VERSION = metadata.version("fastapi-offline")


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def asset_url(name: str) -> str:
    return f"{ASSETS_PATH}/{name}?v={_VERSION}"


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    """A policy that lets the page load and connect to this server only (Redoc's footer logo from its CDN is
    refused, and hidden by Redoc when it fails). The inline start-up script is allowed by its hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(bytes(page.body).decode())
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
    ).replace("  ", " ")
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install_docs(app: FastAPI) -> None:
    """Call with an app created with `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_PATH, CachedStatic(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} API"
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=title,
                swagger_js_url=asset_url("swagger-ui-bundle.js"),
                swagger_css_url=asset_url("swagger-ui.css"),
                swagger_favicon_url=static_url("favicon.svg"),
                oauth2_redirect_url=oauth2_redirect,
                # No badge from the public validator service: the page talks to this server only.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _same_origin_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=title,
                redoc_js_url=asset_url("redoc.standalone.js"),
                redoc_favicon_url=static_url("favicon.svg"),
                with_google_fonts=False,
            )
        )
