"""The `kamiyo` command: serve, db upgrade, import, export (more sub-commands join as features land)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kamiyo.config import get_settings

T = TypeVar("T")
app = typer.Typer(help="Kamiyo: open exploit intelligence.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to head (SQLite and PostgreSQL)."""
    from kamiyo import migrations

    settings = get_settings()
    migrations.upgrade(settings.database_url)
    console.print(f"database at {', '.join(migrations.current_heads())}")


async def _seed() -> int:
    from sqlalchemy.exc import IntegrityError

    from kamiyo.db import Database
    from kamiyo.ingest.seed import seed_default_dataset

    db = Database(get_settings().database_url)
    try:
        async with db.session() as session:
            result = await seed_default_dataset(session)
    except IntegrityError:  # another process seeded the same database at the same moment
        return 0
    finally:
        await db.dispose()
    return len(result.created) if result else 0


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(help="HTTP worker processes.")] = 1,
    no_workers: Annotated[
        bool,
        typer.Option("--no-workers", help="API and dashboard only; run `kamiyo worker` for background work."),
    ] = False,
) -> None:
    """Serve the API and dashboard (with the ingest scheduler and delivery worker unless --no-workers)."""
    import os

    import uvicorn

    from kamiyo import migrations
    from kamiyo.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    migrations.upgrade(settings.database_url)
    if settings.seed_default_dataset:
        created = _run(_seed())
        if created:
            console.print(f"stored {created} incidents from the bundled DeFiHackLabs dataset")
    os.environ["KAMIYO_RUN_WORKERS"] = "0" if no_workers else "1"
    uvicorn.run(
        "kamiyo.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


async def _import(path: Path, notify: bool) -> tuple[int, int, int, list[tuple[int, str]]]:
    from kamiyo.db import Database
    from kamiyo.ingest.importer import ImportProblems, iter_reports
    from kamiyo.ingest.store import StoreResult, store_reports
    from kamiyo.kit.timeutil import utcnow

    settings = get_settings()
    db = Database(settings.database_url)
    problems = ImportProblems()
    total = StoreResult()
    notify_since = utcnow() - settings.alert_max_age_delta if notify else None
    chunk: list[Any] = []
    try:
        with _progress() as progress:
            task = progress.add_task(f"importing {path.name}", total=None)

            async def flush() -> None:
                async with db.session() as session:
                    total.add(await store_reports(session, chunk, notify_since=notify_since))
                progress.advance(task, len(chunk))
                chunk.clear()

            for report in iter_reports(path, problems):
                chunk.append(report)
                if len(chunk) >= 20_000:
                    await flush()
            if chunk:
                await flush()
    finally:
        await db.dispose()
    return len(total.created), total.reports_new, total.reports_unchanged, problems.errors


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON, JSONL or CSV file of exploits.")],
    notify: Annotated[
        bool,
        typer.Option("--notify", help="Alert subscribers about new, recent incidents, as ingestion does."),
    ] = False,
) -> None:
    """Bulk-load exploits (idempotent: importing a file twice adds nothing)."""
    from kamiyo import migrations
    from kamiyo.ingest.importer import RowError

    migrations.upgrade(get_settings().database_url)
    try:
        created, new_reports, unchanged, errors = _run(_import(path, notify))
    except (RowError, ValueError) as exc:
        console.print(f"[red]cannot import {path}: {exc}")
        raise typer.Exit(2) from exc
    for line, message in errors[:20]:
        console.print(f"[yellow]skipped row {line}: {message}")
    if len(errors) > 20:
        console.print(f"[yellow]… and {len(errors) - 20} more skipped rows")
    console.print(f"{created} new exploits, {new_reports} new reports, {unchanged} unchanged, {len(errors)} skipped")


async def _export(fmt: str, out: Path | None) -> int:
    from kamiyo.db import Database
    from kamiyo.exploits.export import csv_header, csv_row, iter_exploits, jsonl_row
    from kamiyo.exploits.filters import ExploitFilters

    db = Database(get_settings().database_url)
    count = 0
    stream = out.open("wb") if out else sys.stdout.buffer
    try:
        with _progress() as progress:
            task = progress.add_task("exporting", total=None)
            async with db.session() as session:
                if fmt == "csv":
                    stream.write(csv_header().encode())
                async for exploit in iter_exploits(session, ExploitFilters()):
                    stream.write(csv_row(exploit).encode() if fmt == "csv" else jsonl_row(exploit))
                    count += 1
                    if count % 1000 == 0:
                        progress.advance(task, 1000)
            progress.update(task, completed=count)
    finally:
        if out:
            stream.close()
        else:
            stream.flush()
        await db.dispose()
    return count


@app.command()
def export(
    format: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output).")] = None,
) -> None:
    """Dump every exploit, newest first."""
    from kamiyo.exploits.export import FORMATS

    if format not in FORMATS:
        console.print(f"[red]--format must be one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    count = _run(_export(format, out))
    console.print(f"exported {count} exploits")


if __name__ == "__main__":  # pragma: no cover
    app()
