"""What every `kamiyo` sub-command shares: the message console, running a coroutine, one unit of database work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from kamiyo.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kamiyo.db import Database

T = TypeVar("T")
console = Console(stderr=True)  # messages; results (keys, passwords, tables) go to standard output
TABLE_WIDTH = 80  # tables on standard output fit a classic terminal


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def table_console() -> Console:
    return Console(width=TABLE_WIDTH)


async def with_database(work: Callable[[Database], Awaitable[T]], url: str | None = None) -> T:
    """`work` on a database opened for it alone (KAMIYO_DATABASE_URL unless `url`), disposed after."""
    from kamiyo.db import Database

    db = Database(url or get_settings().database_url)
    try:
        return await work(db)
    finally:
        await db.dispose()


async def with_session(work: Callable[[AsyncSession], Awaitable[T]], url: str | None = None) -> T:
    """`work` in one session of a database opened for it alone."""

    async def in_session(db: Database) -> T:
        async with db.session() as session:
            return await work(session)

    return await with_database(in_session, url)


def upgrade_database(url: str) -> int | None:
    """Migrate to the latest revision, then re-derive every record when the merge rules or the curated files
    changed (the count of changed records; None when nothing had changed): how every command brings a
    database up to date, so no deployment serves records derived by older rules."""
    from kamiyo import migrations
    from kamiyo.ingest.refresh import refresh_records

    migrations.upgrade(url)
    return run(with_session(refresh_records, url))


def account_command(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, run one unit of work, and turn a refusal (unknown user, taken e-mail…) into a message."""
    from kamiyo.errors import KamiyoError

    upgrade_database(get_settings().database_url)
    try:
        return run(with_session(work))
    except KamiyoError as exc:
        console.print(f"[red]{exc.message}", highlight=False)
        raise typer.Exit(1) from exc
