"""The `kamiyo` command: serve, db upgrade, import, export (more sub-commands join as features land)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from kamiyo.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


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


app = typer.Typer(help="Kamiyo: open exploit intelligence.", no_args_is_help=True, add_completion=False, cls=Commands)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="User accounts: operator administration without billing.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
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
    warning = settings.public_url_warning(host)
    if warning:
        console.print(f"[yellow]{warning}")
    if settings.seed_default_dataset:
        created = _run(_seed())
        if created:
            console.print(f"stored {created} incidents from the bundled DeFiHackLabs dataset")
    os.environ["KAMIYO_RUN_WORKERS"] = "0" if no_workers else "1"
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
    from kamiyo import migrations
    from kamiyo.ops.backup import BackupError, restore_backup

    settings = get_settings()
    try:
        restore_backup(settings.database_url, file, force=yes, while_in_use=force)
    except BackupError as exc:
        typer.echo(f"kamiyo: restore refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    migrations.upgrade(settings.database_url)  # a backup from an older version is brought up to date
    console.print(f"restored {file.name}")


async def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from kamiyo.db import Database

    db = Database(get_settings().database_url)
    try:
        async with db.session() as session:
            return await work(session)
    finally:
        await db.dispose()


def _account_command(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, run one unit of work, and turn a refusal (unknown user, taken e-mail…) into a message."""
    from kamiyo import migrations
    from kamiyo.errors import KamiyoError

    migrations.upgrade(get_settings().database_url)
    try:
        return _run(_with_session(work))
    except KamiyoError as exc:
        console.print(f"[red]{exc.message}")
        raise typer.Exit(1) from exc


async def _user_by_email(session: AsyncSession, email: str) -> Any:
    from kamiyo.accounts import service
    from kamiyo.errors import NotFound

    user = await service.get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email.strip().lower()}")
    return user


def _check_tier(tier: str) -> None:
    from kamiyo.tiers import TIERS

    if tier not in TIERS:
        console.print(f"[red]tier must be one of {', '.join(TIERS)}")
        raise typer.Exit(2)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="E-mail address, the login.")],
    tier: Annotated[str, typer.Option(help="free, pro, team or enterprise.")] = "free",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (else one is generated).")
    ] = False,
) -> None:
    """Create a user; a generated password is printed once on standard output."""
    from kamiyo.accounts import service

    _check_tier(tier)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else service.generate_password()

    async def work(session: AsyncSession) -> int:
        return (await service.create_user(session, email, password, tier=tier)).id

    user_id = _account_command(work)
    console.print(f"created user {user_id} ({email.strip().lower()}, tier {tier})")
    if not password_stdin:
        console.print("generated password (shown once):")
        typer.echo(password)


@users_app.command("set-tier")
def users_set_tier(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    tier: Annotated[str, typer.Argument(help="free, pro, team or enterprise.")],
) -> None:
    """Set a user's tier by hand (billing without Stripe); it applies to their next request."""
    from kamiyo.accounts import service

    _check_tier(tier)

    async def work(session: AsyncSession) -> None:
        await service.set_tier(session, await _user_by_email(session, email), tier)

    _account_command(work)
    console.print(f"{email.strip().lower()} is now on the {tier} tier")


@keys_app.command("create")
def keys_create(
    email: Annotated[str, typer.Argument(help="The owner's e-mail address.")],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key by.")] = "cli",
) -> None:
    """Create an API key for a user; the key is printed once on standard output and never again."""
    from kamiyo.accounts import service

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email(session, email)
        return (await service.create_key(session, user.id, name))[1]

    key = _account_command(work)
    console.print(f"API key for {email.strip().lower()} (shown once, store it now):")
    typer.echo(key)


# --- ingestion: one round now, the source table, background workers -------------------------


@app.command()
def ingest(
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable); default: all.")
    ] = None,
) -> None:
    """Run one aggregation round now: progress bar, then a per-source summary table."""
    from kamiyo import migrations
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
    migrations.upgrade(settings.database_url)
    outcomes = _run(ingest_round(settings, source or [], console))
    Console().print(outcome_table(outcomes))
    if outcomes and all(o.failed for o in outcomes):
        raise typer.Exit(1)


@app.command("sources")
def sources_command() -> None:
    """Table of sources: enabled, health, last success, items, score."""
    from kamiyo import migrations
    from kamiyo.ingest.commands import sources_rows, sources_table

    settings = get_settings()
    migrations.upgrade(settings.database_url)
    Console().print(sources_table(_run(sources_rows(settings)), settings.offline))


@app.command()
def worker(
    ingest: Annotated[bool, typer.Option("--ingest/--no-ingest", help="Run the ingest scheduler.")] = True,
    deliver: Annotated[bool, typer.Option("--deliver/--no-deliver", help="Run the delivery worker.")] = True,
) -> None:
    """Background work alone (next to `serve --no-workers`); stops on Ctrl-C or SIGTERM."""
    from kamiyo import migrations
    from kamiyo.ingest.commands import run_worker
    from kamiyo.logging_setup import configure_logging
    from kamiyo.ops.inuse import ServerHold

    settings = get_settings()
    configure_logging(settings.log_level)
    migrations.upgrade(settings.database_url)
    hold = ServerHold(settings.database_url)  # a restore refuses while this worker runs
    if settings.public_url_setting is None and deliver:
        console.print(f"[yellow]KAMIYO_PUBLIC_URL is unset: links in alerts will point at {settings.public_url}")
    if settings.worker_metrics:
        from kamiyo.ops.metrics import start_worker_metrics_server

        start_worker_metrics_server(settings.worker_metrics)
    try:
        _run(run_worker(settings, ingest=ingest, deliver=deliver, console=console))
    finally:
        hold.release()


# --- community submissions, admins, on-chain verification (issue 8) ---------------------------

submissions_app = typer.Typer(help="Community submissions: the review queue.", no_args_is_help=True)
app.add_typer(submissions_app, name="submissions")


@users_app.command("set-admin")
def users_set_admin(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    off: Annotated[bool, typer.Option("--off", help="Take admin rights away instead.")] = False,
) -> None:
    """Let a user review community submissions (the dashboard's admin pages), or stop them."""
    from kamiyo.kit.timeutil import utcnow

    async def work(session: AsyncSession) -> None:
        user = await _user_by_email(session, email)
        user.is_admin, user.updated_at = not off, utcnow()

    _account_command(work)
    console.print(f"{email.strip().lower()} is {'no longer' if off else 'now'} an admin")


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
            table = _account_command(lambda session: queue_table(session, status, limit))
        except ValueError as exc:
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from exc
        Console(width=200).print(table)
        return
    line = _account_command(
        lambda session: decide(session, settings, target, approve=approve is not None, note=note, reviewer=reviewer)
    )
    console.print(line)


@app.command()
def verify(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="Exploits to check at most.")] = 100,
) -> None:
    """Confirm EVM exploit transactions on chain through KAMIYO_RPC_URLS (one round of the job)."""
    from kamiyo import migrations
    from kamiyo.db import Database
    from kamiyo.enrich.onchain import verify_pending

    settings = get_settings()
    migrations.upgrade(settings.database_url)

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
    console.print(f"checked {outcome.checked}: {counts}; re-applied {outcome.reapplied}, reset {outcome.reset}")


if __name__ == "__main__":  # pragma: no cover
    app()
