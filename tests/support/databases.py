"""Test databases: a migrated template seeded with the bundled dataset, and per-test copies of a template."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from pathlib import Path

from kamiyo.db import Database
from tests.support.services import psql

_counter = itertools.count()
# Under pytest-xdist each worker has its own services, but a preset KAMIYO_TEST_POSTGRES_URL is shared:
# database names carry the worker id so two workers never create the same one.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def seed(url: str) -> None:
    from kamiyo.ingest.seed import seed_default_dataset

    async def run() -> None:
        db = Database(url)
        async with db.session() as session:
            await seed_default_dataset(session)
        await db.dispose()

    asyncio.run(run())


def fresh_sqlite(template: Path, tmp_path: Path, name: str = "kamiyo.db") -> str:
    path = tmp_path / name  # a test may want a seeded and an empty database: two files
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def fresh_postgres(admin: str, template: str) -> str:
    name = f"kamiyo_t{WORKER}_{next(_counter)}"
    psql(admin, f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    return f"{admin}/{name}"


def read_only_copy(admin: str, template: str) -> str:
    """A copy the server refuses to write to: a test that writes by mistake fails at its first write."""
    url = fresh_postgres(admin, template)
    psql(admin, f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET default_transaction_read_only = on")
    return url


def sqlite_footprint(url: str) -> tuple[int, int, int]:
    """What any write to a SQLite file changes: the file's mtime and size, and its WAL's size (reads change none)."""
    path = Path(url.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, wal.stat().st_size if wal.exists() else 0
