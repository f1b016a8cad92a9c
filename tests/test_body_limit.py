"""KAMIYO_MAX_BODY_BYTES: a body over the limit answers 413 before it is read. A declared Content-Length is
refused without pulling a byte; a chunked body is cut off at the chunk that passes the limit. Each test
streams its body from a generator that counts what the server pulled."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kamiyo.config import Settings
from tests.billing.helpers import billing_settings
from tests.support.app import running
from tests.support.users import settings_for

pytestmark = pytest.mark.reads_seed  # every test here only reads the seeded database

LIMIT = 4096
CHUNK = 1024


class CountedBody:
    """A request body of `chunks` × CHUNK bytes, produced only as the server pulls it."""

    def __init__(self, chunks: int, fill: bytes = b"x") -> None:
        self.chunks = chunks
        self.fill = fill
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += CHUNK
            yield self.fill * CHUNK


def _settings(db_url: str, **env: str) -> Settings:
    return settings_for(db_url, KAMIYO_MAX_BODY_BYTES=str(LIMIT), **env)


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/login", "/api/v1/payments/stripe-webhook", "/api/v1/auth/signup", "/api/v1/submissions"]
)
async def test_a_declared_length_over_the_limit_is_refused_unread(db_url: str, path: str) -> None:
    body = CountedBody(100_000)  # 100 MB if anyone read it
    async with running(billing_settings(db_url, "http://127.0.0.1:9", KAMIYO_MAX_BODY_BYTES=str(LIMIT))) as (_, c):
        headers = {"Content-Length": str(100_000 * CHUNK), "Content-Type": "application/json"}
        response = await c.post(path, content=body, headers=headers)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["details"] == {"limit": LIMIT}
    assert body.pulled == 0


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/payments/stripe-webhook", "/api/v1/keys"])
async def test_a_chunked_body_is_cut_off_once_over_the_limit(db_url: str, path: str) -> None:
    body = CountedBody(100_000)
    async with running(billing_settings(db_url, "http://127.0.0.1:9", KAMIYO_MAX_BODY_BYTES=str(LIMIT))) as (_, c):
        response = await c.post(path, content=body, headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers  # really chunked
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert LIMIT < body.pulled <= LIMIT + CHUNK  # the chunk that crossed the limit, and not one more


async def test_a_page_form_over_the_limit_gets_the_html_413(db_url: str) -> None:
    body = CountedBody(100_000, fill=b"a")
    async with running(_settings(db_url)) as (_, c):
        response = await c.post("/login", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert body.pulled <= LIMIT + CHUNK


async def test_bodies_within_the_limit_are_read_as_usual(db_url: str) -> None:
    async with running(_settings(db_url)) as (_, c):
        login = {"email": "nobody@example.com", "password": "x" * 100, "pad": "y" * 3000}
        small = await c.post("/api/v1/auth/login", json=login)
        assert small.status_code == 401  # read and judged, not refused for its size
        exact = CountedBody(LIMIT // CHUNK)
        at_limit = await c.post("/api/v1/auth/login", content=exact, headers={"Content-Type": "application/json"})
        assert at_limit.status_code in {400, 422} and exact.pulled == LIMIT  # not JSON, but all of it was read


async def test_the_default_limit_is_one_mebibyte(db_url: str) -> None:
    async with running(settings_for(db_url)) as (_, c):
        over = CountedBody(1024 + 1)
        r = await c.post("/api/v1/auth/login", content=over, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["details"] == {"limit": 1024 * 1024}
        assert over.pulled == (1024 + 1) * CHUNK
        declared = CountedBody(100 * 1024)  # the 100 MB login body
        headers = {"Content-Length": str(100 * 1024 * CHUNK), "Content-Type": "application/json"}
        r = await c.post("/api/v1/auth/login", content=declared, headers=headers)
        assert r.status_code == 413 and declared.pulled == 0


async def test_a_cors_preflighted_413_carries_cors_headers(db_url: str) -> None:
    settings = _settings(db_url, KAMIYO_CORS_ORIGINS="https://app.example")
    async with running(settings) as (_, c):
        body = CountedBody(10)
        headers = {"Origin": "https://app.example", "Content-Type": "application/json"}
        r = await c.post("/api/v1/auth/login", content=body, headers=headers)
    assert r.status_code == 413 and r.headers["access-control-allow-origin"] == "https://app.example"
