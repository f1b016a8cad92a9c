"""One tail of `exploit_events` per process, fanned out to every connected stream client.

The database is the source of truth, so this works across processes without Redis: whichever
process stored an exploit, every API process sees its `exploit.created` row, woken by the same
signals as the delivery worker (commit hooks, LISTEN/NOTIFY, SQLite data_version) or a short poll.
Ids committed out of order (PostgreSQL sequences) are caught by re-reading recent gaps for a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select

from kamiyo.db import Database
from kamiyo.delivery import wakeup
from kamiyo.exploits.filters import ExploitFilters
from kamiyo.exploits.models import ExploitEvent
from kamiyo.exploits.service import exploits_by_ids
from kamiyo.kit.tasks import cancel_and_wait
from kamiyo.stream.filters import matches

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
BATCH = 500
GAP_SECONDS = 60.0
POLL_SECONDS = 2.0
REPLAY_LIMIT = 1000


@dataclass(eq=False)
class Subscriber:
    filters: ExploitFilters
    queue: asyncio.Queue[tuple[int, dict[str, Any]] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    closed: bool = False
    replaying: bool = False
    held: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def offer(self, item: tuple[int, dict[str, Any]]) -> None:
        if self.closed or not matches(self.filters, item[1]):
            return
        if self.replaying:  # live events wait until the missed ones are queued, to keep id order
            self.held.append(item)
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:  # too slow a reader: end its stream; it resumes with Last-Event-ID
            self.close()

    def finish_replay(self, missed: list[tuple[int, dict[str, Any]]]) -> None:
        self.replaying = False
        seen: set[int] = set()
        for item in [*missed, *self.held]:
            if item[0] not in seen:
                seen.add(item[0])
                self.offer(item)
        self.held.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class StreamHub:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0
        self.gaps: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._listener = wakeup.CrossProcessListener(db)
        self._ready = asyncio.Event()

    async def subscribe(self, filters: ExploitFilters, last_event_id: int | None) -> Subscriber:
        if self._task is None:
            wakeup.install_session_hooks()
            self._listener.start()
            self._task = asyncio.create_task(self._run(), name="kamiyo-stream-hub")
        await self._ready.wait()
        subscriber = Subscriber(filters, replaying=last_event_id is not None)
        self.subscribers.add(subscriber)  # before reading the missed ones, so nothing falls in between
        if last_event_id is not None:
            _, missed = await self._read(ExploitEvent.id > last_event_id, upto=self.last_id)
            subscriber.finish_replay(missed)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        self.subscribers.discard(subscriber)

    async def _run(self) -> None:
        waiter = wakeup.Waiter("events")
        try:
            async with self.db.session() as session:
                self.last_id = int((await session.execute(select(func.max(ExploitEvent.id)))).scalar() or 0)
            self._ready.set()
            while True:
                try:
                    await self._tail()
                except Exception as exc:  # keep streaming through a database hiccup
                    log.warning("stream tail failed: %s", type(exc).__name__)
                await waiter.wait(POLL_SECONDS)
        finally:
            waiter.close()

    async def _tail(self) -> None:
        now = time.monotonic()
        self.gaps = {i: t for i, t in self.gaps.items() if now - t < GAP_SECONDS}
        condition = ExploitEvent.id > self.last_id
        if self.gaps:
            condition = or_(condition, ExploitEvent.id.in_(list(self.gaps)))
        ids, items = await self._read(condition)
        for event_id in ids:
            self.gaps.pop(event_id, None)
            if event_id > self.last_id:
                self.gaps.update({missing: now for missing in range(self.last_id + 1, event_id)})
                self.last_id = event_id
        for item in items:
            for subscriber in list(self.subscribers):
                subscriber.offer(item)

    async def _read(
        self, condition: Any, upto: int | None = None
    ) -> tuple[list[int], list[tuple[int, dict[str, Any]]]]:
        """Ids of all events read (they move the tail) and the `exploit.created` ones with their exploit."""
        async with self.db.session() as session:
            stmt = select(ExploitEvent.id, ExploitEvent.exploit_id, ExploitEvent.type).where(condition)
            if upto is not None:
                stmt = stmt.where(ExploitEvent.id <= upto)
            rows = list(await session.execute(stmt.order_by(ExploitEvent.id).limit(REPLAY_LIMIT)))
            created = [(r[0], r[1]) for r in rows if r[2] == "exploit.created"]
            exploits = {e["id"]: e for e in await exploits_by_ids(session, [eid for _, eid in created])}
        items = [(event_id, exploits[exploit_id]) for event_id, exploit_id in created if exploit_id in exploits]
        return [r[0] for r in rows], items

    async def stop(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.close()
        if self._task is not None:
            await cancel_and_wait([self._task])
        await self._listener.stop()
