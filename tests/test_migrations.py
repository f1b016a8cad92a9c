"""Alembic migrations run up, down and up again on both engines, and match the models."""

from __future__ import annotations

import asyncio

from sqlalchemy import inspect

from kamiyo import migrations
from kamiyo.db import Base, Database
from kamiyo.models import import_all_models


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        db = Database(url)
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await db.dispose()
        return names

    return asyncio.run(run())


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    import_all_models()
    expected = set(Base.metadata.tables)
    assert expected <= _tables(empty_db_url)
    migrations.downgrade(empty_db_url, "base")
    assert not (expected & _tables(empty_db_url))
    migrations.upgrade(empty_db_url)
    assert expected <= _tables(empty_db_url)


def test_models_and_migrations_agree(empty_db_url: str) -> None:
    """Autogenerate finds nothing to add: the migrations create what the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import_all_models()

    async def run() -> list[object]:
        db = Database(empty_db_url)
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
        await db.dispose()
        return list(diff)

    diff = [d for d in asyncio.run(run()) if "exploits_fts" not in str(d) and "ix_exploits_search" not in str(d)]
    assert diff == []
