"""Consistent online backups and verified restores, for SQLite and PostgreSQL.

SQLite: the sqlite3 backup API copies the database in one step inside one read transaction, so the
copy is a consistent snapshot while the server keeps writing (WAL readers never block writers); it is
integrity-checked, then gzip-compressed as `kamiyo-YYYYmmddTHHMMSSZ.sqlite3.gz`.
PostgreSQL: `pg_dump -Fc` (one repeatable-read snapshot) as `kamiyo-YYYYmmddTHHMMSSZ.pgdump`, restored with
`pg_restore --clean --if-exists` in a single transaction. Files are written under a temporary name and
renamed when complete; retention keeps the N newest. Credentials go to pg_dump through the environment,
never its command line.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from kamiyo.db import async_url, private_sqlite_file
from kamiyo.kit.files import PRIVATE_FILE, private_dir, private_file
from kamiyo.kit.timeutil import utcnow
from kamiyo.ops.inuse import DatabaseInUse, in_thread, restore_guard

log = logging.getLogger(__name__)

SQLITE_SUFFIX = ".sqlite3.gz"
PG_SUFFIX = ".pgdump"
NAME_RE = re.compile(r"^kamiyo-(\d{8}T\d{6}Z)(?:-(\d+))?(\.sqlite3\.gz|\.pgdump)$")
PG_TIMEOUT_S = 6 * 3600
# Tables that only fill through real use (migrations may seed bookkeeping rows elsewhere): a target
# with rows in any of them "has data" and is replaced only with --yes.
DATA_TABLES = ("exploits", "reports", "users", "user_webhooks")


class BackupError(Exception):
    """A backup or restore could not be done; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    size: int
    seconds: float
    removed: list[Path] = field(default_factory=list)


def _url(database_url: str) -> URL:
    async_url(database_url)  # raises DatabaseConfigError for a URL Kamiyo cannot use
    return make_url(database_url)


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


# --- naming and retention -------------------------------------------------------------------------


def _sort_key(path: Path) -> tuple[str, int]:
    match = NAME_RE.match(path.name)
    assert match
    return match.group(1), int(match.group(2) or 0)


def list_backups(out_dir: Path) -> list[Path]:
    """Kamiyo backup files in `out_dir`, newest first (by the time in their names)."""
    if not out_dir.is_dir():
        return []
    return sorted((p for p in out_dir.iterdir() if NAME_RE.match(p.name) and p.is_file()), key=_sort_key, reverse=True)


def backup_time(path: Path) -> datetime:
    match = NAME_RE.match(path.name)
    if not match:
        raise BackupError(f"{path.name} is not named like a Kamiyo backup")
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%z")


def prune(out_dir: Path, keep: int, *, protect: Path | None = None) -> list[Path]:
    """Delete all but the `keep` newest backups (`protect`, the one just written, always stays)."""
    keep = max(keep, 1)
    others = [p for p in list_backups(out_dir) if p != protect]
    removed = others[keep - 1 :] if protect is not None and protect.exists() else others[keep:]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _new_path(out_dir: Path, suffix: str, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path, seq = out_dir / f"kamiyo-{stamp}{suffix}", 1
    while path.exists():
        seq += 1
        path = out_dir / f"kamiyo-{stamp}-{seq}{suffix}"
    return path


def _publish(partial: Path, final: Path) -> None:
    """Owner-only, fsync, then rename, so a listed backup is always a complete file that only its owner reads."""
    partial.chmod(PRIVATE_FILE)
    with partial.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, final)


# --- SQLite ---------------------------------------------------------------------------------------


def _integrity_ok(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()
    if result != ["ok"]:
        raise BackupError(f"integrity check failed: {'; '.join(result[:5])}")
    if "alembic_version" not in tables:
        raise BackupError("not a Kamiyo database (no alembic_version table)")


def _sqlite_snapshot(db_path: Path, dest: Path) -> None:
    if not db_path.is_file():
        raise BackupError(f"no SQLite database at {db_path}")
    src = sqlite3.connect(db_path, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: one step, one read transaction -> a consistent snapshot
        finally:
            dst.close()
    finally:
        src.close()


def _sqlite_backup(db_path: Path, final: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".kamiyo-backup-", dir=final.parent) as tmp:
        raw = Path(tmp) / "snapshot.sqlite3"
        _sqlite_snapshot(db_path, raw)
        _integrity_ok(raw)
        partial = private_file(Path(tmp) / final.name)
        with raw.open("rb") as src, gzip.open(partial, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        _publish(partial, final)


def _gunzip(file: Path, dest: Path) -> None:
    try:
        with gzip.open(file, "rb") as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError) as exc:
        raise BackupError(f"{file.name} is not a complete gzip file: {exc}") from exc


def _sqlite_has_data(db_path: Path) -> bool:
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return False
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in DATA_TABLES if t in names)
    finally:
        conn.close()


def _sqlite_restore(file: Path, db_path: Path) -> None:
    private_sqlite_file(db_path)
    with tempfile.TemporaryDirectory(prefix=".kamiyo-restore-", dir=db_path.parent) as tmp:
        raw = Path(tmp) / "restore.sqlite3"
        _gunzip(file, raw)
        _integrity_ok(raw)
        src = sqlite3.connect(raw)
        try:
            dst = sqlite3.connect(db_path, timeout=30)
            try:
                src.backup(dst)  # overwrites the target page by page under its write lock (WAL-safe)
            finally:
                dst.close()
        finally:
            src.close()
    _integrity_ok(db_path)


# --- PostgreSQL -----------------------------------------------------------------------------------


def _pg_env(url: URL) -> dict[str, str]:
    env = dict(os.environ)
    values = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
    }
    for key, option in (("PGHOST", "host"), ("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert")):
        value = url.query.get(option)
        if value:
            values[key] = value if isinstance(value, str) else value[0]
    env.update({k: v for k, v in values.items() if v})
    return env


def _pg_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client (Debian package postgresql-client)")
    return exe


def _run_pg(args: list[str], url: URL, what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(  # noqa: S603 - fixed tool, arguments from our own settings
            args, env=_pg_env(url), capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} took longer than {PG_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in done.stderr.strip().splitlines()[-3:])
        raise BackupError(f"{what} failed (exit {done.returncode}): {tail}")
    return done


def _pg_backup(url: URL, final: Path) -> None:
    partial = final.with_name(f".{final.name}.partial")
    try:
        private_file(partial)  # pg_dump writes into it, keeping the mode
        _run_pg([_pg_tool("pg_dump"), "--format=custom", "--file", str(partial)], url, "pg_dump")
        _publish(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def _pg_verify(file: Path) -> None:
    try:
        listing = subprocess.run(  # noqa: S603
            [_pg_tool("pg_restore"), "--list", str(file)], capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError("pg_restore --list timed out") from exc
    if listing.returncode != 0:
        raise BackupError(f"{file.name} is not a readable pg_dump archive: {listing.stderr.strip()[:300]}")
    if "alembic_version" not in listing.stdout:
        raise BackupError(f"{file.name} is not a Kamiyo database dump (no alembic_version table)")


def _pg_has_data(url: URL) -> bool:
    import asyncpg

    async def check() -> bool:
        conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            for table in DATA_TABLES:
                if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table) and await conn.fetchval(
                    f'SELECT EXISTS (SELECT 1 FROM "{table}")'
                ):
                    return True
            return False
        finally:
            await conn.close()

    return bool(in_thread(check()))


def _pg_restore(file: Path, url: URL) -> None:
    args = [_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction"]
    _run_pg([*args, "--exit-on-error", "--dbname", url.database or "", str(file)], url, "pg_restore")


# --- public API -----------------------------------------------------------------------------------


def create_backup(database_url: str, out_dir: Path, *, keep: int = 7, now: datetime | None = None) -> BackupResult:
    """Back up the database now into `out_dir`, then keep only the `keep` newest backups there."""
    url = _url(database_url)
    private_dir(out_dir)
    started = time.monotonic()
    final = _new_path(out_dir, SQLITE_SUFFIX if _is_sqlite(url) else PG_SUFFIX, now or utcnow())
    if _is_sqlite(url):
        _sqlite_backup(_sqlite_path(url), final)
    else:
        _pg_backup(url, final)
    removed = prune(out_dir, keep, protect=final)
    return BackupResult(final, final.stat().st_size, time.monotonic() - started, removed)


def verify_backup(file: Path) -> None:
    """Raise BackupError unless `file` is a complete, readable Kamiyo backup."""
    if not file.is_file():
        raise BackupError(f"no such file: {file}")
    if file.name.endswith(PG_SUFFIX):
        _pg_verify(file)
        return
    if not file.name.endswith(SQLITE_SUFFIX):
        raise BackupError(f"{file.name}: expected a *{SQLITE_SUFFIX} or *{PG_SUFFIX} backup")
    with tempfile.TemporaryDirectory(prefix=".kamiyo-verify-") as tmp:
        raw = Path(tmp) / "verify.sqlite3"
        _gunzip(file, raw)
        _integrity_ok(raw)


def target_has_data(database_url: str) -> bool:
    url = _url(database_url)
    return _sqlite_has_data(_sqlite_path(url)) if _is_sqlite(url) else _pg_has_data(url)


def restore_backup(database_url: str, file: Path, *, force: bool = False, while_in_use: bool = False) -> None:
    """Verify `file`, then replace the database's contents with it: refused over data unless `force`, and while a
    server, worker or other client uses the database unless `while_in_use`."""
    url = _url(database_url)
    is_pg_file = file.name.endswith(PG_SUFFIX)
    if is_pg_file == _is_sqlite(url):
        kinds = ("a PostgreSQL dump", "SQLite") if is_pg_file else ("a SQLite backup", "PostgreSQL")
        raise BackupError(f"{kinds[0]} cannot be restored into {kinds[1]}; use `kamiyo export`/`import` to move data")
    verify_backup(file)
    try:
        with nullcontext() if while_in_use else restore_guard(database_url):
            if not force and target_has_data(database_url):
                raise BackupError("the target database has data; stop the server and pass --yes to replace it")
            if is_pg_file:
                _pg_restore(file, url)
            else:
                _sqlite_restore(file, _sqlite_path(url))
    except DatabaseInUse as exc:
        raise BackupError(str(exc)) from exc
