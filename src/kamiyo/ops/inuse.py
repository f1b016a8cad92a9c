"""Whether a Kamiyo server or worker is using a database, so that a restore never replaces it under them.

SQLite: every `serve` worker process and every `kamiyo worker` holds a shared `flock` on a lock file beside
the database (`<file>-kamiyo.lock`) for as long as it runs; a restore takes it exclusively (refused while any
holder lives, released by the kernel when a process dies, so no stale pid files) and keeps it while it writes,
so no server starts half-way through. PostgreSQL: a restore looks at `pg_stat_activity` for other client
connections to the database (servers, workers, or anyone else) and refuses while there are any.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kamiyo.db import sqlite_file
from kamiyo.kit.files import private_dir, private_file

log = logging.getLogger(__name__)
LOCK_SUFFIX = "-kamiyo.lock"
PG_SETTLE_S = 1.0  # connections closed a moment ago may still be listed while their backends exit


class DatabaseInUse(Exception):
    """The database is in use (or being restored); the message says by what and what to do."""


def lock_file(database_url: str) -> Path | None:
    path = sqlite_file(database_url)
    return Path(path).with_name(Path(path).name + LOCK_SUFFIX) if path else None


def _open_lock(path: Path) -> int | None:
    try:
        private_dir(path.parent)
        return os.open(private_file(path), os.O_RDONLY)
    except OSError as exc:  # a read-only or odd file system: the guard is best effort there
        log.warning("cannot use the lock file %s (%s): restores cannot tell whether this server runs", path, exc)
        return None


class ServerHold:
    """What a server or worker process holds on its database while it runs (see the module docstring)."""

    def __init__(self, database_url: str) -> None:
        self._fd: int | None = None
        path = lock_file(database_url)
        if path is None:
            return
        fd = _open_lock(path)
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            name = path.name.removesuffix(LOCK_SUFFIX)
            raise DatabaseInUse(f"the database {name} is being restored: start again when that is done") from None
        except OSError:
            os.close(fd)
            return
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def restore_guard(database_url: str) -> Iterator[None]:
    """Refuse (DatabaseInUse) while a server, worker or any other client uses the database; on SQLite, keep
    servers from starting until the block ends."""
    path = lock_file(database_url)
    if path is None:
        others = _pg_other_sessions(database_url)
        if others:
            raise DatabaseInUse(
                f"the database has {len(others)} other connection(s) ({', '.join(others[:5])}): stop the Kamiyo "
                "servers and workers that use it (and close other sessions) first, or pass --force"
            )
        yield
        return
    fd = _open_lock(path)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(
                "a Kamiyo server or worker is using this database: stop it first (the restore replaces the data "
                "under it), or pass --force if nothing is using it"
            ) from None
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


_SESSIONS_SQL = """
SELECT coalesce(nullif(application_name, ''), 'unnamed') || coalesce(' from ' || host(client_addr), '')
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


def _pg_other_sessions(database_url: str) -> list[str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def look() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            deadline = asyncio.get_running_loop().time() + PG_SETTLE_S
            while True:
                others = [str(row[0]) for row in await conn.fetch(_SESSIONS_SQL)]
                if not others or asyncio.get_running_loop().time() >= deadline:
                    return others
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    result: list[str] = in_thread(look())
    return result


def in_thread(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, whether or not an event loop is running here."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
