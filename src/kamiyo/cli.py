"""The `kamiyo` command: serve, db upgrade, import, export (more sub-commands join as features land)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from kamiyo.cli_accounts import keys_app, users_app
from kamiyo.cli_support import account_command, console, table_console, upgrade_database
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
db_app = typer.Typer(help="Database administration.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.command("mcp")(mcp_command)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the latest revision (SQLite and PostgreSQL)."""
    from kamiyo import migrations

    settings = get_settings()
    before = migrations.database_revisions(settings.database_url)
    refreshed = upgrade_database(settings.database_url)
    after = migrations.database_revisions(settings.database_url)
    latest = set(after) == set(migrations.current_heads())
    at = f"database at revision {', '.join(after) or 'none'}{' (latest)' if latest else ''}"
    if before == after:
        console.print(f"{at}: nothing to do", highlight=False)
    else:
        console.print(f"{at}: upgraded from {', '.join(before) or 'an empty database'}", highlight=False)
    if refreshed:
        console.print(
            f"records re-derived by the current rules and curated files: {refreshed} changed", highlight=False
        )


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


async def _key_check() -> Any:
    from kamiyo.db import Database
    from kamiyo.delivery.keycheck import check_key

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            return await check_key(session, settings)
    finally:
        await db.dispose()


def require_known_key() -> None:
    """Exit (status 1, one line) when stored secrets exist and none of the newest opens with this key."""
    found = _run(_key_check())
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


@app.command()
def backup(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for backups (default KAMIYO_BACKUP_DIR, else data/backups).")
    ] = None,
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="Keep the N newest there (default KAMIYO_BACKUP_KEEP, 7).")
    ] = None,
) -> None:
    """Consistent online backup now (SQLite backup API / pg_dump) while the server keeps running."""
    from kamiyo.ops.backup import BackupError, create_backup

    settings = get_settings()
    try:
        result = create_backup(settings.database_url, out or settings.backup_path, keep=keep or settings.backup_keep)
    except BackupError as exc:
        typer.echo(f"kamiyo: backup failed: {exc}", err=True)  # one line, never wrapped
        raise typer.Exit(1) from exc
    removed = f", removed {len(result.removed)} old" if result.removed else ""
    console.print(f"backup written: {result.size:,} bytes in {result.seconds:.1f} s{removed}")
    typer.echo(str(result.path))


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A kamiyo-*.sqlite3.gz or kamiyo-*.pgdump file from `kamiyo backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace a database that already has data.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore even though a server, worker or other connection seems to use the database "
            "(only when you know nothing does: it would keep working on replaced data).",
        ),
    ] = False,
) -> None:
    """Verify a backup, then replace the database's contents with it.

    Refused while a Kamiyo server or worker uses the database (SQLite: they hold a lock beside the file;
    PostgreSQL: any other connection to the database): stop them first."""
    from kamiyo.ops.backup import BackupError, restore_backup

    settings = get_settings()
    try:
        restore_backup(settings.database_url, file, force=yes, while_in_use=force)
    except BackupError as exc:
        typer.echo(f"kamiyo: restore refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    upgrade_database(settings.database_url)  # a backup from an older version is brought up to date
    console.print(f"restored {file.name}")


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


# --- community submissions, admins, on-chain verification (issue 8) ---------------------------

submissions_app = typer.Typer(
    help="Community submissions: the review queue.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(submissions_app, name="submissions")


@submissions_app.command("review")
def submissions_review(
    approve: Annotated[int | None, typer.Option("--approve", help="Approve this submission id.")] = None,
    reject: Annotated[int | None, typer.Option("--reject", help="Reject this submission id.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Reviewer's note, shown to the submitter.")] = None,
    reviewer: Annotated[str | None, typer.Option("--as", help="Record this admin's e-mail as the reviewer.")] = None,
    status: Annotated[str, typer.Option("--status", help="List pending, approved, rejected or all.")] = "pending",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Rows to list.")] = 50,
) -> None:
    """List the queue (pending, oldest first), or approve or reject one submission."""
    from kamiyo.submissions.commands import decide, queue_table

    if approve is not None and reject is not None:
        console.print("[red]give --approve or --reject, not both")
        raise typer.Exit(2)
    settings = get_settings()
    target = approve if approve is not None else reject
    if target is None:
        try:
            table = account_command(lambda session: queue_table(session, status, limit))
        except ValueError as exc:
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from exc
        Console(width=200).print(table)
        return
    line = account_command(
        lambda session: decide(session, settings, target, approve=approve is not None, note=note, reviewer=reviewer)
    )
    console.print(line)


@app.command()
def verify(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="Exploits to check at most.")] = 100,
) -> None:
    """Confirm EVM exploit transactions on chain and time their records by block, through KAMIYO_RPC_URLS
    (one round of the job)."""
    from kamiyo.db import Database
    from kamiyo.enrich.onchain import verify_pending

    settings = get_settings()
    upgrade_database(settings.database_url)

    async def run() -> Any:
        db = Database(settings.database_url)
        try:
            return await verify_pending(db, settings, limit=limit)
        finally:
            await db.dispose()

    outcome = _run(run())
    if outcome.disabled:
        console.print(f"[yellow]on-chain verification is off: {outcome.disabled}")
        return
    for chain, problem in outcome.skipped_chains.items():
        console.print(f"[yellow]skipped {chain}: {problem}")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.by_status.items())) or "nothing due"
    console.print(
        f"checked {outcome.checked}: {counts}; {outcome.blocks_fetched} blocks read, "
        f"{outcome.updated} records updated, reset {outcome.reset}"
    )


@app.command()
def prices(
    requests: Annotated[int, typer.Option("--requests", min=1, max=10_000, help="Price API requests at most.")] = 60,
) -> None:
    """Price token-denominated losses at their incident day through the price API (one round of the job)."""
    from kamiyo.db import Database
    from kamiyo.enrich.prices import price_pending

    settings = get_settings()
    upgrade_database(settings.database_url)

    async def run() -> Any:
        db = Database(settings.database_url)
        try:
            return await price_pending(db, settings, max_requests=requests)
        finally:
            await db.dispose()

    outcome = _run(run())
    if outcome.disabled:
        console.print(f"[yellow]pricing is off: {outcome.disabled}")
        return
    for error in outcome.errors[:10]:
        console.print(f"[yellow]{error}")
    console.print(
        f"{outcome.requests} requests ({outcome.failed} failed): {outcome.quotes} prices, {outcome.missing} "
        f"without a price; {outcome.repriced} records re-derived; {outcome.pending} left for the next round"
    )


if __name__ == "__main__":  # pragma: no cover
    app()
