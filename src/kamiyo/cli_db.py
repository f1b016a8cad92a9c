"""`kamiyo db upgrade`, `kamiyo backup` and `kamiyo restore`: the database's schema and its copies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kamiyo.cli_support import console, upgrade_database
from kamiyo.config import get_settings

db_app = typer.Typer(help="Database administration.", no_args_is_help=True, rich_markup_mode=None)


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
