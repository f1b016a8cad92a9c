"""The one way tests boot the app: real settings, the real app with its lifespan, an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from kamiyo.config import Settings
from kamiyo.db import Database


def make_settings(url: str, **overrides: Any) -> Settings:
    """Settings on `url`, offline, without the response cache (tests see their own writes at once) and without
    background work (the delivery worker, backups): a test that needs it asks (`KAMIYO_RUN_WORKERS=True`, or
    `running(..., workers=True)`)."""
    values: dict[str, Any] = {
        "KAMIYO_DATABASE_URL": url,
        "KAMIYO_RESPONSE_CACHE_SECONDS": 0,
        "KAMIYO_OFFLINE": True,
        "KAMIYO_RUN_WORKERS": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    routers: Iterable[APIRouter] = (),
    base_url: str = "http://testserver",
    workers: bool | None = None,
    database: Database | None = None,
    timeout: float = 5.0,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real app (middleware, lifespan) behind an in-process client seen as coming from `client`;
    its background work as `settings` say, or on/off as `workers` asks."""
    from kamiyo.app import create_app

    if workers is not None:
        settings = settings.model_copy(update={"run_workers": workers})
    app = create_app(settings, database=database)
    for router in routers:
        app.include_router(router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout) as c:
            yield app, c


async def make_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """`running` as an async generator, for fixtures that only need the client."""
    async with running(settings) as (_, c):
        yield c
