"""`kamiyo restore` refuses while a server or worker uses the database (SQLite: the lock they hold beside the
file; PostgreSQL: other connections in pg_stat_activity), leaves the data untouched when it does, restores once
they are gone, and `--force` overrides the check."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from kamiyo.cli import app
from kamiyo.config import get_settings
from kamiyo.db import Database
from kamiyo.ops.backup import BackupError, create_backup, restore_backup
from kamiyo.ops.inuse import DatabaseInUse, ServerHold, restore_guard
from tests.support.app import running
from tests.support.users import settings_for

KAMIYO = Path(sys.executable).parent / "kamiyo"
MARKER = "restore-guard-marker"


def _restore_cli(url: str, backup: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KAMIYO_DATABASE_URL=url, KAMIYO_SEED="0", KAMIYO_OFFLINE="1")
    cmd = [str(KAMIYO), "restore", str(backup), "--yes", *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


async def _marker(url: str, *, add: bool = False) -> bool:
    """Add, or look for, a row written after the backup was taken (a restore removes it)."""
    db = Database(url)
    try:
        async with db.session() as session:
            if add:
                await session.execute(text("INSERT INTO kamiyo_meta (key, value) VALUES (:k, 1)"), {"k": MARKER})
            found = await session.execute(text("SELECT 1 FROM kamiyo_meta WHERE key = :k"), {"k": MARKER})
            return found.first() is not None
    finally:
        await db.dispose()


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[None]:
    """The app with its lifespan (as `kamiyo serve` runs it), its pool holding a connection."""
    async with running(settings_for(url)) as (_, c):
        assert (await c.get("/health")).status_code == 200
        yield


async def test_restore_is_refused_while_a_server_runs_then_allowed(db_url: str, tmp_path: Path) -> None:
    backup = create_backup(db_url, tmp_path / "b").path
    assert await _marker(db_url, add=True)
    async with serving(db_url):
        with pytest.raises(BackupError, match="stop"):
            await asyncio.to_thread(restore_backup, db_url, backup, force=True)
        refused = await asyncio.to_thread(_restore_cli, db_url, backup)
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "restore refused" in lines[0] and "--force" in lines[0], refused.stderr
    assert await _marker(db_url), "a refused restore changed the data"
    done = await asyncio.to_thread(_restore_cli, db_url, backup)
    assert done.returncode == 0, done.stderr
    assert not await _marker(db_url)  # restored to the backup, which has no marker


async def test_force_restores_while_a_server_runs(db_url: str, tmp_path: Path) -> None:
    backup = create_backup(db_url, tmp_path / "b").path
    await _marker(db_url, add=True)
    async with serving(db_url):
        forced = await asyncio.to_thread(_restore_cli, db_url, backup, "--force")
    assert forced.returncode == 0, forced.stderr
    assert not await _marker(db_url)


def test_a_worker_hold_blocks_restores_until_released(db_url: str, backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL is guarded by its connections, not a lock file")
    hold = ServerHold(db_url)
    with pytest.raises(DatabaseInUse), restore_guard(db_url):
        pass
    hold.release()
    with restore_guard(db_url), pytest.raises(DatabaseInUse, match="being restored"):
        ServerHold(db_url)  # a server does not start half-way through a restore
    ServerHold(db_url).release()


def test_another_postgresql_session_blocks_restores(db_url: str, backend: str, tmp_path: Path) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite is guarded by the lock file")
    backup = create_backup(db_url, tmp_path / "b").path
    psql = subprocess.Popen(  # an operator's open, idle session on the database
        ["psql", "-X", "-q", db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert psql.stdin and psql.stdout
    try:
        psql.stdin.write("SELECT 'connected';\n")
        psql.stdin.flush()
        while "connected" not in psql.stdout.readline():
            pass
        refused = _restore_cli(db_url, backup)
        assert refused.returncode == 1 and "other connection" in refused.stderr and "psql" in refused.stderr
    finally:
        psql.stdin.close()  # psql quits and its session ends
        psql.wait(timeout=10)
    assert _restore_cli(db_url, backup).returncode == 0


def test_a_worker_started_during_a_restore_says_so_in_one_line(
    db_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL is guarded by its connections, not a lock file")
    monkeypatch.setenv("KAMIYO_DATABASE_URL", db_url)
    monkeypatch.setenv("KAMIYO_OFFLINE", "1")
    get_settings.cache_clear()
    try:
        with restore_guard(db_url):
            result = CliRunner().invoke(app, ["worker"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "is being restored" in lines[0], result.output
