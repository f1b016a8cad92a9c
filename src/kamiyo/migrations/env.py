"""Alembic environment: runs migrations over Kamiyo's async engine on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from kamiyo.db import Base, create_engine
from kamiyo.models import import_all_models

import_all_models()
config = context.config
target_metadata = Base.metadata


MIGRATION_LOCK = 7_240_001  # PostgreSQL advisory lock: several processes may start at once


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(config.get_main_option("kamiyo.database_url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():  # pragma: no cover - SQL script generation is not used
    raise SystemExit("offline migrations are not supported; run `kamiyo db upgrade`")
asyncio.run(_run_async())
