"""The shared read-only copy behind `@pytest.mark.reads_seed` really catches a test that writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from kamiyo.db import Database
from tests.support.databases import fresh_sqlite, sqlite_footprint


async def _run(url: str, sql: str) -> None:
    db = Database(url)
    try:
        async with db.session() as session:
            await session.execute(text(sql))
    finally:
        await db.dispose()


TOUCH = "UPDATE exploits SET protocol = protocol || '' WHERE id = (SELECT min(id) FROM exploits)"


async def test_postgresql_refuses_writes_to_the_shared_copy(read_only_postgres: str) -> None:
    await _run(read_only_postgres, "SELECT count(*) FROM exploits")
    with pytest.raises(DBAPIError, match="read-only transaction"):
        await _run(read_only_postgres, TOUCH)


async def test_a_write_to_a_sqlite_copy_changes_its_footprint_and_a_read_does_not(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = fresh_sqlite(sqlite_template, tmp_path)
    before = sqlite_footprint(url)
    await _run(url, "SELECT count(*) FROM exploits")
    assert sqlite_footprint(url) == before
    await _run(url, TOUCH)
    assert sqlite_footprint(url) != before
