"""Waking workers when there is work, instead of polling on a fixed delay.

- In the process: a commit whose session wrote `ExploitEvent` rows (or called `wake_after_commit`)
  sets every registered waiter of that topic, right after the commit (SQLAlchemy session hooks).
- Across processes on PostgreSQL: `NOTIFY kamiyo_<topic>` inside the writing transaction (a trigger
  on `exploit_events`, and `wake_after_commit` for deliveries); each worker LISTENs.
- Across processes on SQLite: a dedicated connection watches `PRAGMA data_version`, which changes
  whenever another connection commits (checked every 50 ms; it costs microseconds).
A slow safety poll in the loops covers anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kamiyo.db import Database

log = logging.getLogger(__name__)
TOPICS = ("events", "deliveries")
CHANNELS = {topic: f"kamiyo_{topic}" for topic in TOPICS}
_WAKE_KEY = "kamiyo_wake"
SQLITE_WATCH_INTERVAL = 0.05


class Waiter:
    """An asyncio.Event set whenever one of its topics is notified."""

    def __init__(self, *topics: str) -> None:
        self.topics = topics
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        for topic in topics:
            _waiters.setdefault(topic, set()).add(self)

    def set(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.event.set()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float | None) -> bool:  # noqa: ASYNC109
        """True when woken, False on timeout; clears the flag either way."""
        try:
            if timeout is None:
                await self.event.wait()
            else:
                await asyncio.wait_for(self.event.wait(), max(timeout, 0.0))
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()

    def close(self) -> None:
        for topic in self.topics:
            _waiters.get(topic, set()).discard(self)


_waiters: dict[str, set[Waiter]] = {}


def notify_local(*topics: str) -> None:
    for topic in topics:
        for waiter in list(_waiters.get(topic, ())):
            waiter.set()


def wake_after_commit(session: AsyncSession | Session, topic: str) -> None:
    """Wake `topic` waiters (here and, on PostgreSQL, in other processes) once this transaction commits."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_WAKE_KEY, set()).add(topic)


def _after_flush(session: Session, _: Any) -> None:
    from kamiyo.exploits.models import ExploitEvent

    if any(isinstance(obj, ExploitEvent) for obj in session.new):
        session.info.setdefault(_WAKE_KEY, set()).add("events")


def _before_commit(session: Session) -> None:
    topics = session.info.get(_WAKE_KEY)
    if not topics or session.get_bind().dialect.name != "postgresql":
        return
    for topic in sorted(topics):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNELS[topic]})


def _after_commit(session: Session) -> None:
    topics = session.info.pop(_WAKE_KEY, None)
    if topics:
        notify_local(*topics)


def _after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)


_installed = False


def install_session_hooks() -> None:
    """Install the commit hooks once per process (idempotent)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_soft_rollback", lambda s, _t: _after_rollback(s))
    _installed = True


class CrossProcessListener:
    """Forwards other processes' commits to local waiters: LISTEN on PostgreSQL, data_version on SQLite."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        runner = self._listen_pg if self.db.engine.dialect.name == "postgresql" else self._watch_sqlite
        self._task = asyncio.create_task(self._forever(runner), name="kamiyo-wakeup-listener")

    async def _forever(self, runner: Any) -> None:
        while True:
            try:
                await runner()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the safety poll covers the gap; reconnect after a pause
                log.warning("wake-up listener lost (%s); reconnecting", type(exc).__name__)
                notify_local(*TOPICS)
                await asyncio.sleep(1.0)

    async def _listen_pg(self) -> None:
        import asyncpg

        url = make_url(self.db.url).set(drivername="postgresql")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            for topic, channel in CHANNELS.items():
                await conn.add_listener(channel, lambda *_args, _t=topic: notify_local(_t))
            notify_local(*TOPICS)  # anything committed before we listened
            while not conn.is_closed():
                await asyncio.sleep(5.0)
                await conn.execute("SELECT 1")  # notices a dead connection
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _watch_sqlite(self) -> None:
        if self.db.quick is not None:  # a file: read on the event loop (microseconds, no thread hops)
            last = None
            while True:
                row = self.db.quick.fetch_one("PRAGMA data_version")
                version = row[0] if row else None
                if last is not None and version != last:
                    notify_local(*TOPICS)
                last = version
                await asyncio.sleep(SQLITE_WATCH_INTERVAL)
        async with self.db.engine.connect() as conn:
            last = None
            while True:
                version = (await conn.execute(text("PRAGMA data_version"))).scalar()
                if last is not None and version != last:
                    notify_local(*TOPICS)
                last = version
                await asyncio.sleep(SQLITE_WATCH_INTERVAL)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
