"""The `kamiyo` command: serve, db upgrade, import, export (more sub-commands join as features land)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from kamiyo.cli_accounts import keys_app, users_app
from kamiyo.cli_db import backup, db_app, restore
from kamiyo.cli_enrich import prices, verify
from kamiyo.cli_submissions import submissions_app
from kamiyo.cli_support import console, table_console, upgrade_database, with_session
from kamiyo.cli_support import run as _run
from kamiyo.config import get_settings
from kamiyo.mcp.command import mcp_command


def _database_label() -> str:
    """KAMIYO_DATABASE_URL without its password, to name the database in a message."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:
        return "of KAMIYO_DATABASE_URL"


class Commands(TyperGroup):
    """Every command: a database that cannot be used (a URL Kamiyo cannot use, an unreachable server, a refused
    login, a restore in progress) or an invalid setting is one line on standard error and exit status 1, not a
    traceback."""

    def invoke(self, ctx: Any) -> Any:
        from pydantic import ValidationError

        from kamiyo.ops.dberrors import unusable_database
        from kamiyo.ops.inuse import DatabaseInUse

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except DatabaseInUse as exc:  # e.g. a worker started while a restore runs
            typer.echo(f"kamiyo: {exc}", err=True)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            error = exc.errors()[0]
            name = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            typer.echo(f"kamiyo: invalid setting {name}: {error.get('msg', 'invalid value')}", err=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            reason = unusable_database(exc)
            if reason is None:
                raise
            typer.echo(f"kamiyo: cannot use the database {_database_label()}: {reason}", err=True)
            raise typer.Exit(1) from None


# Plain help (no rich boxes): option lines read `--no-workers  …`, not `--no-workers <bool> …`.
app = typer.Typer(
    help="Kamiyo: open exploit intelligence.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=Commands,
)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(submissions_app, name="submissions")
app.command("mcp")(mcp_command)


async def _seed() -> int:
    from sqlalchemy.exc import IntegrityError

    from kamiyo.db import Database, analyze
    from kamiyo.ingest.seed import seed_default_dataset

    db = Database(get_settings().database_url)
    try:
        async with db.session() as session:
            result = await seed_default_dataset(session)
        await analyze(db.engine, only_if_missing=True)
    except IntegrityError:  # another process seeded the same database at the same moment
        return 0
    finally:
        await db.dispose()
    return len(result.created) if result else 0


def require_known_key() -> None:
    """Exit (status 1, one line) when stored secrets exist and none of the newest opens with this key."""
    from kamiyo.delivery.keycheck import check_key

    found = _run(with_session(lambda session: check_key(session, get_settings())))
    if found.key_is_new:
        console.print(
            f"kamiyo: refusing to start: the {found.sampled} newest stored webhook secrets and channel destinations "
            "cannot be decrypted with this KAMIYO_SECRET_KEY; set the key this database was created with "
            "(it is backed up with the database)",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1)


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

    from kamiyo.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    upgrade_database(settings.database_url)
    warning = settings.public_url_warning(host)
    if warning:
        console.print(f"[yellow]{warning}")
    require_known_key()
    if settings.seed_default_dataset:
        created = _run(_seed())
        if created:
            console.print(f"stored {created} incidents from the bundled DeFiHackLabs dataset")
    os.environ["KAMIYO_RUN_WORKERS"] = "0" if no_workers else "1"  # for uvicorn's worker processes too
    get_settings.cache_clear()  # this process reads the settings again, with the flag
    from kamiyo.ops.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir()  # PROMETHEUS_MULTIPROC_DIR: one /metrics view over all --workers
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        console.print("[yellow]each worker process keeps its own /metrics; set PROMETHEUS_MULTIPROC_DIR to add them up")
    uvicorn.run(
        "kamiyo.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the app decides whose forwarded headers to believe (KAMIYO_TRUSTED_PROXIES)
        http="kamiyo.ops.http_protocol:HeaderTimeoutProtocol",  # request heads bounded by KAMIYO_HEADER_TIMEOUT
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
    from kamiyo.db import Database, analyze
    from kamiyo.ingest.bulk import import_reports
    from kamiyo.ingest.importer import ImportProblems, iter_reports
    from kamiyo.kit.timeutil import utcnow

    settings = get_settings()
    db = Database(settings.database_url)
    problems = ImportProblems()
    notify_since = utcnow() - settings.alert_max_age_delta if notify else None
    try:
        with _progress() as progress:
            task = progress.add_task(f"importing {path.name}", total=None)
            total = await import_reports(
                db,
                iter_reports(path, problems),
                notify_since=notify_since,
                advance=lambda n: progress.advance(task, n),
            )
        if total.reports_new > 10_000:
            await analyze(db.engine)
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
    from kamiyo.ingest.importer import RowError

    upgrade_database(get_settings().database_url)
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
    from contextlib import aclosing

    from kamiyo.db import Database
    from kamiyo.exploits.export import export_chunks
    from kamiyo.exploits.filters import ExploitFilters

    db = Database(get_settings().database_url)
    count = 0
    async with db.engine.connect():  # a database that cannot be used is reported before any output
        pass
    stream = out.open("wb") if out else sys.stdout.buffer
    try:
        with _progress() as progress:
            task = progress.add_task("exporting", total=None)
            async with db.session() as session, aclosing(export_chunks(session, ExploitFilters(), fmt)) as chunks:
                async for chunk, rows in chunks:  # the same code as the API's export
                    stream.write(chunk)
                    count += rows
                    progress.advance(task, rows)
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


app.command()(backup)
app.command()(restore)


# --- ingestion: one round now, the source table, background workers -------------------------


@app.command()
def ingest(
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable); default: all.")
    ] = None,
) -> None:
    """Run one aggregation round now: progress bar, then a per-source summary table."""
    from kamiyo.ingest.commands import ingest_round, outcome_table
    from kamiyo.sources import REGISTRY

    settings = get_settings()
    unknown = [name for name in source or [] if name not in REGISTRY]
    if unknown:
        console.print(f"[red]unknown source(s): {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
        raise typer.Exit(2)
    if settings.offline:
        console.print("[yellow]KAMIYO_OFFLINE is set: no fetching")
        return
    upgrade_database(settings.database_url)
    outcomes = _run(ingest_round(settings, source or [], console))
    table_console().print(outcome_table(outcomes))
    if outcomes and all(o.failed for o in outcomes):
        raise typer.Exit(1)


@app.command("sources")
def sources_command() -> None:
    """Table of sources: enabled, health, last success, items, score."""
    from kamiyo.ingest.commands import sources_rows, sources_table

    settings = get_settings()
    upgrade_database(settings.database_url)
    table_console().print(sources_table(_run(sources_rows(settings)), settings.offline))


@app.command()
def worker(
    ingest: Annotated[bool, typer.Option("--ingest/--no-ingest", help="Run the ingest scheduler.")] = True,
    deliver: Annotated[bool, typer.Option("--deliver/--no-deliver", help="Run the delivery worker.")] = True,
) -> None:
    """Background work alone (next to `serve --no-workers`); stops on Ctrl-C or SIGTERM."""
    from kamiyo.logging_setup import configure_logging
    from kamiyo.ops.inuse import ServerHold
    from kamiyo.ops.reporting import init_error_reporting
    from kamiyo.workers import run_alone

    settings = get_settings()
    configure_logging(settings.log_level)
    init_error_reporting(settings)
    upgrade_database(settings.database_url)
    hold = ServerHold(settings.database_url)  # a restore refuses while this worker runs
    if settings.public_url_setting is None and deliver:
        console.print(f"[yellow]KAMIYO_PUBLIC_URL is unset: links in alerts will point at {settings.public_url}")
    if deliver:
        require_known_key()
    if settings.worker_metrics:
        from kamiyo.ops.metrics import start_worker_metrics_server

        start_worker_metrics_server(settings.worker_metrics)
    try:
        _run(run_alone(settings, ingest=ingest, deliver=deliver, say=console.print))
    finally:
        hold.release()


app.command()(verify)
app.command()(prices)


if __name__ == "__main__":  # pragma: no cover
    app()
