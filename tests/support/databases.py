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
