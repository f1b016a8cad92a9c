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


def test_facets_carries_names_and_chains_over(empty_db_url: str) -> None:
    """Rows stored before "facets" are searchable by alias and findable by every chain after it."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from kamiyo.exploits.filters import ExploitFilters
    from kamiyo.exploits.models import Exploit, ExploitChain
    from kamiyo.exploits.service import list_exploits

    migrations.downgrade(empty_db_url, "blocks")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = {"tx_hash": None, "chain": "solana", "protocol": "Wormhole", "protocol_key": "wormhole",
           "amount_sort": -1.0, "timestamp": datetime(2022, 2, 2, tzinfo=UTC), "category": "bridge",
           "description": "", "first_seen_at": now, "updated_at": now, "name": "Wormhole",
           "aliases": ["Portal"], "chains": ["solana", "ethereum"]}  # fmt: skip

    async def run() -> tuple[set[str], list[str], list[str]]:
        db = Database(empty_db_url)
        async with db.session() as session:
            await session.execute(insert(Exploit).values(row))
            await session.commit()
        await db.dispose()
        await asyncio.to_thread(migrations.upgrade, empty_db_url)
        db = Database(empty_db_url)
        async with db.session() as session:
            side = set((await session.execute(select(ExploitChain.chain))).scalars())
            by_alias = await list_exploits(session, ExploitFilters(q="portal"))
            by_chain = await list_exploits(session, ExploitFilters(chains=["ethereum"]))
        await db.dispose()
        return side, [e["name"] for e in by_alias["data"]], [e["name"] for e in by_chain["data"]]

    side, by_alias, by_chain = asyncio.run(run())
    assert side == {"ethereum"} and by_alias == ["Wormhole"] and by_chain == ["Wormhole"]
