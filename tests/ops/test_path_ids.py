"""Every integer id in a path, in the API and the pages, follows one rule: beyond what the database can
hold (or below 1) it is an invalid value (422, JSON on the API, HTML on pages), never a 500; the largest
id the database can hold is simply not found."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from kamiyo.db import Database
from kamiyo.paging import MAX_ROW_ID
from kamiyo.web.setup import is_page_path
from tests.support.app import running
from tests.support.users import PASSWORD, add_key, add_user, settings_for
from tests.web.test_account_pages import csrf_of

PARAM = re.compile(r"{(\w+)}")
STRING_PARAMS = {"kind": "discord"}  # the alert pages' channel kind


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def int_id_routes(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """(method, path, int parameters) of every route with an integer path parameter."""
    found = []
    for path, route in _walk(app.routes):
        ints = [p.alias for p in route.dependant.path_params if p.field_info.annotation is int]  # as the path names it
        if ints:
            found += [(method, path, ints) for method in sorted(route.methods - {"HEAD"})]
    return found


def _url(path: str, ints: list[str], value: int) -> str:
    return PARAM.sub(lambda m: str(value) if m.group(1) in ints else STRING_PARAMS[m.group(1)], path)


async def _make_admin(db_url: str, user_id: int) -> None:
    from kamiyo.accounts.models import User

    db = Database(db_url)
    try:
        async with db.session() as session:
            user = await session.get(User, user_id)
            assert user is not None
            user.is_admin = True
    finally:
        await db.dispose()


@pytest.fixture
async def signed_in(db_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict[str, str]]]:
    """An enterprise admin: a browser session (pages) and an API key (the API)."""
    user_id = await add_user(db_url, "ids@example.com", tier="enterprise")
    await _make_admin(db_url, user_id)
    key = await add_key(db_url, user_id)
    async with running(settings_for(db_url, KAMIYO_RATE_LIMITS="off")) as (app, c):
        token = csrf_of((await c.get("/login")).text)
        login = await c.post("/login", data={"csrf_token": token, "email": "ids@example.com", "password": PASSWORD})
        assert login.status_code == 303
        yield app, c, {"Authorization": f"Bearer {key}"}


async def _call(c: httpx.AsyncClient, method: str, url: str, api_headers: dict[str, str], token: str) -> httpx.Response:
    if is_page_path(url):
        return await c.request(method, url, data={"csrf_token": token} if method == "POST" else None)
    body: dict[str, Any] | None = {} if method in {"POST", "PATCH"} else None
    if url.endswith("/confirm"):  # a body the route accepts, so only the id decides
        body = {"code": "ABCD2345"}
    return await c.request(method, url, headers=api_headers, json=body)


async def test_every_integer_path_id_is_bounded(signed_in: tuple[FastAPI, httpx.AsyncClient, dict[str, str]]) -> None:
    app, c, api_headers = signed_in
    routes = int_id_routes(app)
    paths = {path for _, path, _ in routes}
    # the ones the issue names, and one of each family: a new family is covered without editing this test
    named = {"/app/keys/{key_id}/revoke", "/api/v1/keys/{key_id}", "/app/admin/submissions/{submission_id}/approve"}
    assert named <= paths
    assert any(p.startswith("/api/v1/user-webhooks/") for p in paths)
    assert any(p.startswith("/app/alerts/") for p in paths) and any(p.startswith("/app/webhooks/") for p in paths)
    assert len(routes) >= 30
    token = csrf_of((await c.get("/app/keys")).text)
    for method, path, ints in routes:
        for value in (2**63, 9223372036854775808 * 10, 0, -1):
            url = _url(path, ints, value)
            response = await _call(c, method, url, api_headers, token)
            assert response.status_code == 422, (method, url, response.status_code, response.text[:200])
            if is_page_path(url):
                assert response.headers["content-type"].startswith("text/html"), url
            else:
                assert response.json()["error"]["code"] == "invalid", url
        url = _url(path, ints, MAX_ROW_ID)  # in range: looked up, and not there
        response = await _call(c, method, url, api_headers, token)
        assert response.status_code == 404, (method, url, response.status_code, response.text[:200])


async def test_the_issue_reproduction_answers_422_not_500(
    signed_in: tuple[FastAPI, httpx.AsyncClient, dict[str, str]],
) -> None:
    _, c, _ = signed_in
    token = csrf_of((await c.get("/app/keys")).text)
    response = await c.post("/app/keys/9223372036854775808/revoke", data={"csrf_token": token})
    assert response.status_code == 422 and "Invalid request" in response.text


@pytest.mark.reads_seed
@pytest.mark.parametrize("row_id", [2**63, 2**64 - 1, -1])
async def test_a_cursor_with_an_id_out_of_range_is_invalid(client: httpx.AsyncClient, row_id: int) -> None:
    raw = f'["-timestamp","2024-01-01T00:00:00",{row_id}]'.encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = await client.get("/exploits", params={"cursor": cursor})
    assert response.status_code == 422 and response.json()["error"]["details"] == [{"field": "cursor"}]
