"""Online backups taken under write load restore every committed row; retention; verified restores."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from kamiyo.db import Database
from kamiyo.ops.backup import (
    BackupError,
    create_backup,
    list_backups,
    restore_backup,
    target_has_data,
    verify_backup,
)
from kamiyo.ops.schedule import backup_loop, run_backup_job, seconds_until_due
from tests.ops.helpers import INSERT_EXPLOIT
from tests.support.app import make_settings
from tests.support.cli import kamiyo
from tests.support.databases import fresh_postgres, fresh_sqlite


class Writer(threading.Thread):
    """Commits one exploit row at a time, as fast as it can, recording each id once its commit returned."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.committed: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._write())
        except BaseException as exc:
            self.error = exc

    async def _write(self) -> None:
        db = Database(self.url)
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                async with db.session() as session:
                    now = datetime.now(UTC)
                    row_id = (
                        await session.execute(INSERT_EXPLOIT, {"p": f"backup-probe-{n}", "now": now})
                    ).scalar_one()
                self.committed.append(int(row_id))
        finally:
            await db.dispose()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.committed) < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "writer made no progress"
            time.sleep(0.01)


async def _ids(url: str) -> set[int]:
    db = Database(url)
    try:
        async with db.session() as session:
            return {int(r[0]) for r in await session.execute(text("SELECT id FROM exploits"))}
    finally:
        await db.dispose()


def _empty_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'restored.db'}"
    return fresh_postgres(request.getfixturevalue("postgres_admin"), request.getfixturevalue("postgres_empty_template"))


def test_backup_under_write_load_restores_every_committed_row(
    backend: str, db_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    writer = Writer(db_url)
    writer.start()
    try:
        writer.wait_for(50)
        committed_before = set(writer.committed)
        count_at_start = len(writer.committed)
        result = create_backup(db_url, tmp_path / "backups", keep=3)
        count_at_end = len(writer.committed)
        writer.wait_for(count_at_end + 20)
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert count_at_end > count_at_start, "the writer was blocked by the backup"
    assert result.path.name.startswith("kamiyo-") and result.size > 0

    target = _empty_target(backend, request, tmp_path)
    restore_backup(target, result.path)
    restored = asyncio.run(_ids(target))
    started_after = set(writer.committed[count_at_end + 1 :])  # their INSERT began after the backup returned
    assert committed_before <= restored, "rows committed before the backup started are missing"
    assert not started_after & restored, "rows written after the backup finished cannot be in it"
    assert len(restored - set(writer.committed)) > 800  # the seeded incidents came along
    if backend == "sqlite":
        with sqlite3.connect(target.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _kamiyo(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return kamiyo(*args, KAMIYO_DATABASE_URL=url)


def test_cli_backup_keeps_n_newest_and_restore_needs_yes_over_data(backend: str, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "b"
    made = [_kamiyo(db_url, "backup", "--out", str(out), "--keep", "2") for _ in range(3)]
    assert all(m.returncode == 0 for m in made), made[-1].stderr
    paths = [Path(m.stdout.strip()) for m in made]
    assert list_backups(out) == [paths[2], paths[1]] and not paths[0].exists()

    refused = _kamiyo(db_url, "restore", str(paths[2]))
    assert refused.returncode == 1 and "has data" in refused.stderr and "--yes" in refused.stderr
    asyncio.run(_delete_some(db_url))
    restored = _kamiyo(db_url, "restore", str(paths[2]), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert len(asyncio.run(_ids(db_url))) > 800


async def _delete_some(url: str) -> None:
    db = Database(url)
    try:
        async with db.session() as session:
            await session.execute(text("DELETE FROM reports"))
            await session.execute(text("DELETE FROM exploits"))
    finally:
        await db.dispose()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A seeded SQLite database, for behaviour that does not depend on the backend."""
    return fresh_sqlite(sqlite_template, tmp_path)


def test_retention_orders_by_time_in_the_name(tmp_path: Path, sqlite_url: str) -> None:
    db_url = sqlite_url
    base = datetime(2026, 1, 1, tzinfo=UTC)
    times = [base + timedelta(days=d) for d in (3, 1, 2)] + [base + timedelta(days=3)]
    made = [create_backup(db_url, tmp_path, keep=10, now=t).path for t in times]
    assert made[3].name == "kamiyo-20260104T000000Z-2.sqlite3.gz"
    assert list_backups(tmp_path) == [made[3], made[0], made[2], made[1]]
    result = create_backup(db_url, tmp_path, keep=2, now=base)  # a clock gone back: the new file still stays
    assert list_backups(tmp_path) == [made[3], result.path]
    assert set(result.removed) == {made[0], made[1], made[2]}


def test_damaged_or_foreign_files_are_refused_and_the_target_is_untouched(tmp_path: Path, sqlite_url: str) -> None:
    db_url = sqlite_url
    good = create_backup(db_url, tmp_path / "b").path
    truncated = tmp_path / "kamiyo-20260101T000000Z.sqlite3.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "kamiyo-20260102T000000Z.sqlite3.gz"
    garbage.write_bytes(gzip.compress(b"not a database" * 100))
    foreign = tmp_path / "kamiyo-20260103T000000Z.sqlite3.gz"
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    foreign.write_bytes(gzip.compress((tmp_path / "other.db").read_bytes()))
    for bad, reason in ((truncated, "gzip"), (garbage, "SQLite"), (foreign, "not a Kamiyo database")):
        with pytest.raises(BackupError, match=reason):
            verify_backup(bad)
        with pytest.raises(BackupError):
            restore_backup(db_url, bad, force=True)
    with pytest.raises(BackupError, match="cannot be restored into"):
        restore_backup("postgresql://nobody@127.0.0.1:1/none", good, force=True)
    assert target_has_data(db_url) and len(asyncio.run(_ids(db_url))) > 800


async def test_scheduled_job_waits_a_grace_period_then_runs_when_due(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, KAMIYO_BACKUP_DIR=str(tmp_path), KAMIYO_BACKUP_INTERVAL="3s")
    assert seconds_until_due(tmp_path, 86400) == 0
    stop = asyncio.Event()
    task = asyncio.create_task(backup_loop(settings, stop))
    await asyncio.sleep(1.5)
    assert not list_backups(tmp_path)  # a process's first backup waits min(interval, 10 min)
    for _ in range(200):
        if list_backups(tmp_path):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(list_backups(tmp_path)) == 1
    assert 0 < seconds_until_due(tmp_path, 86400) <= 86400
    off = make_settings(sqlite_url, KAMIYO_BACKUP_DIR=str(tmp_path / "off"), KAMIYO_BACKUP_INTERVAL="0")
    await asyncio.wait_for(backup_loop(off), 1)
    assert not list_backups(tmp_path / "off")


def test_scheduled_job_runs_once_per_interval_and_never_beside_another_process(tmp_path: Path, sqlite_url: str) -> None:
    from kamiyo.ops.schedule import _folder_lock

    folder = tmp_path / "b"
    settings = make_settings(sqlite_url, KAMIYO_BACKUP_DIR=str(folder), KAMIYO_BACKUP_INTERVAL="1d")
    with _folder_lock(folder) as mine:
        assert mine and run_backup_job(settings) is None  # another process is at it
    first = run_backup_job(settings)
    assert first is not None and list_backups(folder) == [first.path]
    assert run_backup_job(settings) is None  # not due for a day
