"""`/docs` and `/redoc` work without the internet: every asset comes from this server, and Swagger UI and Redoc
render in Chromium with all traffic beyond loopback refused."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.reads_seed  # every test here only reads the seeded database

CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
_URLS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl:\s*["']([^"']+)["']""")


def _referenced(html: str) -> list[str]:
    return [a or b for a, b in _URLS.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_reference_only_their_own_assets(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    assert "http://" not in html and "https://" not in html and "//" not in html.replace("<!--", "")
    urls = _referenced(html)
    assets = [u for u in urls if u.split("?")[0].endswith(tuple(CONTENT_TYPES))]
    assert len(assets) >= (3 if page == "/docs" else 2), urls
    assert "/openapi.json" in urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        answer = await client.get(url)
        assert answer.status_code == 200, url
        suffix = "." + parts.path.rsplit(".", 1)[-1]
        if suffix in CONTENT_TYPES:
            assert CONTENT_TYPES[suffix] in answer.headers["content-type"], (url, answer.headers["content-type"])
            assert len(answer.content) > 1000 or suffix == ".svg"
    if page == "/docs":
        assert any("swagger-ui-bundle" in u for u in assets) and any(u.split("?")[0].endswith(".css") for u in assets)
    else:
        assert any("redoc" in u for u in assets)


def _loopback_only(context: Any) -> list[str]:
    """Refuse every request that leaves 127.0.0.1; return the list of refused URLs."""
    refused: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
            r.continue_()
        else:
            refused.append(url)
            r.abort()

    context.route("**/*", route)
    return refused


def test_swagger_ui_and_redoc_render_offline(live_server: str, browser: Any) -> None:
    from tests.web.conftest import watch

    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    try:
        refused = _loopback_only(context)
        tab = watch(context.new_page())
        tab.page.goto(f"{live_server}/docs")
        tab.page.wait_for_selector(".swagger-ui .information-container .title")
        assert "Kamiyo" in tab.page.locator(".swagger-ui .information-container .title").inner_text()
        tab.page.wait_for_selector(".opblock-summary-path")
        paths = tab.page.locator(".opblock-summary-path").all_inner_texts()
        assert any(p.startswith("/exploits") for p in paths) and len(paths) > 10
        tab.page.goto(f"{live_server}/redoc")
        tab.page.wait_for_selector("redoc h1")
        assert "Kamiyo" in tab.page.locator("redoc h1").first.inner_text()
        assert tab.page.locator("redoc [role=menuitem], redoc li label").count() > 10
        assert refused == [], refused  # nothing even tried to leave loopback
        # Redoc's footer logo on its CDN is refused by the page's policy, before any request, and then hidden.
        blocked = [f for f in tab.failed if f.endswith(" csp")]
        assert all(f.startswith("failed https://cdn.redoc.ly/") for f in blocked), blocked
        tab.failed = [f for f in tab.failed if f not in blocked]
        said = [e for e in tab.console_errors if "Content Security Policy" in e]
        assert all("'https://cdn.redoc.ly/" in e and "has been blocked" in e for e in said), said
        tab.console_errors = [e for e in tab.console_errors if e not in said]
        tab.assert_clean()
    finally:
        context.close()
