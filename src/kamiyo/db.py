"""Engine, sessions and the declarative base.

Settings carry plain `sqlite:///…` / `postgresql://…` URLs; the app picks its async drivers
(aiosqlite, asyncpg). Services never commit: the request or worker loop that owns a session does.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from kamiyo.kit.files import private_dir, private_file

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; naive UTC text in SQLite (sortable), timestamptz in PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatabaseConfigError(Exception):
    """KAMIYO_DATABASE_URL names no database Kamiyo can use: not a URL, another kind of database, or a SQLite
    file that cannot be created. The message is one line for an operator."""


def async_url(url: str) -> str:
    """Map a plain database URL to the async driver Kamiyo uses for it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        message = "KAMIYO_DATABASE_URL is not a database URL (sqlite:///PATH or postgresql://…)"
        raise DatabaseConfigError(message) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise DatabaseConfigError(
            f"unsupported database URL scheme: {parsed.drivername} (Kamiyo runs on sqlite:///PATH or postgresql://…)"
        )
    return parsed.render_as_string(hide_password=False)


# Map up to SQLite's default ceiling (2 GiB): a page read is a memory access, not a read() call. Index builds over
# 1M rows took 13% less; the address space is virtual, the memory the page cache's (export streams turn it off).
SQLITE_MMAP_BYTES = 2_147_418_112


def _sqlite_pragmas(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def private_sqlite_file(path: Path) -> None:
    """The database file (and its WAL and shared-memory files, if left from an earlier run) owner-only."""
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            private_file(side)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(async_url(url))
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                private_sqlite_file(Path(parsed.database))
            except OSError as exc:
                message = f"cannot create the SQLite database {parsed.database}: {exc.strerror}"
                raise DatabaseConfigError(message) from exc
        kwargs["connect_args"] = {"timeout": 10}
        if parsed.database and parsed.database != ":memory:":
            kwargs.update(pool_size=pool_size, max_overflow=2 * pool_size)
    else:
        kwargs.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={"server_settings": {"timezone": "UTC", "application_name": "kamiyo"}},
        )
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def analyze(engine: AsyncEngine, *, only_if_missing: bool = False) -> None:
    """Refresh planner statistics (after bulk loads; SQLite's planner chooses indexes by them)."""
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            if only_if_missing:
                found = await conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
                if found.first() is not None:
                    return
            await conn.exec_driver_sql("ANALYZE")
        elif not only_if_missing:
            await conn.exec_driver_sql("ANALYZE exploits, reports")


class QuickReader:
    """A plain sqlite3 connection for tiny reads made on the event loop itself (a few microseconds).

    Through aiosqlite every statement is several hops to its thread and back, and under load each hop
    waits for a turn of a busy event loop: a one-row read then takes tens to hundreds of milliseconds.
    WAL readers never wait for writers, so these reads do not block; a failure raises sqlite3.Error and
    the caller takes the async path instead."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # tests drive apps from several threads

    def fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(self.path, timeout=0.05, isolation_level=None, check_same_thread=False)
            cursor = self._conn.execute(sql, params)
            try:  # read to the end: an unfinished statement would keep its read snapshot open
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


class Database:
    """The process's engine and session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        path = sqlite_file(url)
        self.quick = QuickReader(path) if path else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commit on success, roll back on any error."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        if self.quick is not None:
            self.quick.close()
        await self.engine.dispose()
