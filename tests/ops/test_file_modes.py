"""Data files are readable by their owner only (CONTRACT §13), whatever the umask: the SQLite database and its
WAL, backups, a restored database, the generated secret key, and the worker processes' shared cache, which
lives in the data folder rather than at a predictable /tmp path."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kamiyo import migrations
from kamiyo.db import Database
from kamiyo.exploits.cache import SharedBodies, response_cache
from kamiyo.ops.backup import create_backup, restore_backup
from tests.support.app import make_settings


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The common default umask, under which files come out world-readable unless created otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "kamiyo.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)

    async def write_and_look() -> tuple[int, int, int]:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:  # held open, so the -wal and -shm files exist
                await conn.execute(text("INSERT INTO kamiyo_meta (key, value) VALUES ('mode-probe', 1)"))
                await conn.commit()
                wal, shm = path.with_name("kamiyo.db-wal"), path.with_name("kamiyo.db-shm")
                assert wal.exists() and shm.exists()
                return mode(path), mode(wal), mode(shm)
        finally:
            await db.dispose()

    assert asyncio.run(write_and_look()) == (0o600, 0o600, 0o600)
    assert mode(tmp_path / "data") == 0o700


async def test_an_existing_world_readable_database_is_narrowed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    path.with_name("old.db-wal").write_bytes(b"")
    assert mode(path) == 0o644
    db = Database(f"sqlite:///{path}")
    await db.dispose()
    assert mode(path) == 0o600 and mode(path.with_name("old.db-wal")) == 0o600
    assert mode(tmp_path) == stat.S_IMODE(tmp_path.stat().st_mode)  # a parent it did not create is left alone


def test_backups_and_their_folder_are_owner_only(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "backups"
    first = create_backup(db_url, out, keep=3)
    assert mode(first.path) == 0o600 and mode(out) == 0o700
    second = create_backup(db_url, out, keep=3)  # into the folder that now exists
    assert mode(second.path) == 0o600
    assert not [p for p in out.iterdir() if mode(p) & 0o077]


def test_a_restored_sqlite_database_is_owner_only(sqlite_template: Path, tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    shutil.copyfile(sqlite_template, source)
    backup = create_backup(f"sqlite:///{source}", tmp_path / "b", keep=1).path
    target = tmp_path / "restored" / "kamiyo.db"
    restore_backup(f"sqlite:///{target}", backup)
    assert mode(target) == 0o600 and mode(target.parent) == 0o700


def test_the_generated_secret_key_is_owner_only(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'k.db'}", KAMIYO_DATA_DIR=str(tmp_path / "data"))
    key = settings.resolved_secret_key()
    assert (tmp_path / "data" / "secret_key").read_text() == key
    assert mode(tmp_path / "data" / "secret_key") == 0o600 and mode(tmp_path / "data") == 0o700


def _sibling_writes(directory: str, queue: Any) -> None:
    os.umask(0o022)
    shared = SharedBodies.for_worker("sqlite:///kamiyo.db", Path(directory))
    if shared is not None:
        shared.put("/stats?days=7", 1, b"body")
        shared.close()
    queue.put(str(shared.path) if shared else None)


def test_the_workers_shared_cache_is_owner_only_in_the_data_folder(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'k.db'}", KAMIYO_DATA_DIR=str(tmp_path / "data"))
    from kamiyo.app import create_app

    create_app(settings)
    assert response_cache.shared_dir == tmp_path / "data" / "cache"
    cache_dir = response_cache.shared_dir
    cache_dir.mkdir(parents=True, mode=0o755)  # left wide open by an earlier version: narrowed on use
    ctx = multiprocessing.get_context("spawn")  # as uvicorn starts its workers
    queue = ctx.Queue()
    worker = ctx.Process(target=_sibling_writes, args=(str(cache_dir), queue))
    worker.start()
    written = queue.get(timeout=60)
    worker.join(timeout=60)
    assert written is not None and Path(written).parent == cache_dir
    assert mode(Path(written)) == 0o600 and mode(cache_dir) == 0o700
    assert not [p for p in cache_dir.iterdir() if mode(p) & 0o077]
