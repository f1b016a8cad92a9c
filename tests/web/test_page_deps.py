"""The page dependencies: every page of logged-in users (`PageUser`, found by walking the app's routes) sends a
visitor to the login page and back, whatever the method and before any form or CSRF check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from kamiyo.web.page_deps import page_user
from tests.support.app import running
from tests.support.users import settings_for

PARAM = re.compile(r"{(\w+)}")


def _needs(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            yield from _routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def protected_pages(app: FastAPI) -> list[tuple[str, str]]:
    """(method, URL) of every route that needs a logged-in page user, its path parameters filled in."""
    found = []
    for path, route in _routes(app.routes):
        if _needs(route.dependant, page_user):
            url = PARAM.sub(lambda m: "discord" if m.group(1) == "kind" else "7", path)
            found += [(method, url) for method in sorted(route.methods - {"HEAD"})]
    return found


async def test_every_protected_page_sends_visitors_to_login(db_url: str) -> None:
    async with running(settings_for(db_url)) as (app, c):
        pages = protected_pages(app)
        urls = {url for _, url in pages}
        named = {"/app/keys", "/app/keys/7/revoke", "/app/billing", "/app/billing/portal", "/app/webhooks"}
        named |= {"/app/webhooks/7/rotate", "/app/alerts/discord/7/confirm", "/app/admin/submissions"}
        assert named <= urls
        assert any(u.endswith("/deliveries/7/replay") for u in urls) and len(pages) >= 25
        for method, url in pages:
            response = await c.request(method, url, data={"name": "x"} if method == "POST" else None)
            assert response.status_code == 303, (method, url, response.status_code)
            assert response.headers["location"] == f"/login?next={url}", (method, url)
        # the pages for visitors too are not among them
        assert not {"/", "/login", "/signup", "/pricing", "/pricing/checkout", "/app/exploits"} & urls
