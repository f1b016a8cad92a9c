"""Typed dependencies shared by routers: the database session and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.app_state import app_state
from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.paging import MAX_ROW_ID


def row_id(description: str, name: str | None = None) -> Any:
    """Every integer id in a path, API and pages alike: outside 1..MAX_ROW_ID it is an invalid value (422),
    checked before any query (the database could not hold it). `name`: the path's name for it, when the
    handler's parameter is named otherwise (routes made by a factory)."""
    return Path(ge=1, le=MAX_ROW_ID, description=description, alias=name)


def get_database(request: Request) -> Database:
    return app_state(request).db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the endpoint returns, rolled back if it raises."""
    async with get_database(request).session() as session:
        yield session


def get_app_settings(request: Request) -> Settings:
    return app_state(request).settings


# scope="function": commit (or roll back) before the response is sent, so a client never sees a success whose
# commit then failed, and a database error at commit still gets its 503 answer. Streaming answers open their own.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
