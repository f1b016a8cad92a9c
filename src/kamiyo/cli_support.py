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

T = TypeVar("T")
console = Console(stderr=True)  # messages; results (keys, passwords, tables) go to standard output
TABLE_WIDTH = 80  # tables on standard output fit a classic terminal


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def table_console() -> Console:
    return Console(width=TABLE_WIDTH)


async def with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from kamiyo.db import Database

    db = Database(get_settings().database_url)
    try:
        async with db.session() as session:
            return await work(session)
    finally:
        await db.dispose()


def upgrade_database(url: str) -> int | None:
    """Migrate to the latest revision, then re-derive every record when the merge rules or the curated files
    changed (the count of changed records; None when nothing had changed): how every command brings a
    database up to date, so no deployment serves records derived by older rules."""
    from kamiyo import migrations
    from kamiyo.db import Database
    from kamiyo.ingest.store import refresh_records

    migrations.upgrade(url)

    async def refresh() -> int | None:
        db = Database(url)
        try:
            async with db.session() as session:
                return await refresh_records(session)
        finally:
            await db.dispose()

    return run(refresh())


def account_command(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, run one unit of work, and turn a refusal (unknown user, taken e-mail…) into a message."""
    from kamiyo.errors import KamiyoError

    upgrade_database(get_settings().database_url)
    try:
        return run(with_session(work))
    except KamiyoError as exc:
        console.print(f"[red]{exc.message}", highlight=False)
        raise typer.Exit(1) from exc
