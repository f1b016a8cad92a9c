"""The delivery worker: dispatch events into rows, claim due rows, send concurrently, record outcomes.

Three loops in one asyncio process (inside `kamiyo serve` or `kamiyo worker --deliver`):
- dispatch: woken by new events (commit hooks, LISTEN/NOTIFY, SQLite data_version), writes rows;
- send: claims due rows in batches of up to twice the pool (the pool's free slots plus as many held
  in hand), and starts one task per row as slots free up, straight from the finishing send; a target
  never has more than `delivery_per_endpoint` rows claimed (held or in flight), so a slow receiver
  holds only its own slots. Claiming ahead keeps claim transactions few (about 30 per 10,000 rows)
  without idling the pool; a held row whose lease would end before its send could finish is left to
  be claimed again, and held rows are given back (due now) when the worker stops;
- write: records finished attempts in batches, one transaction per batch.
Anything claimed but not recorded when the process dies is due again once its lease ends. Sends stop
starting while attempts sent but not yet recorded (in flight, or finished and waiting for their write)
would exceed UNRECORDED_POOLS pools: a slow write (a loaded database) pauses sending instead of letting
the number a crash would repeat grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.delivery import wakeup
from kamiyo.delivery.attempt import observe, send_one
from kamiyo.delivery.client import DeliveryClient, SendResult
from kamiyo.delivery.dispatch import IndexCache, dispatch_events, has_pending_events
from kamiyo.delivery.notices import tell_owners
from kamiyo.delivery.queue import ALERTS, QUEUES, WEBHOOKS, Claimed, Outcome, claim, next_due, record, release
from kamiyo.delivery.targets import CONFIRMATION, ChannelTarget, TargetCache
from kamiyo.kit.timeutil import utcnow

__all__ = ["DeliveryWorker", "send_one"]
log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
WRITE_BATCH = 2000
WRITE_GATHER = 0.02  # seconds between looks for more outcomes to record in the same transaction
WRITE_GATHER_MAX = 0.1  # longest wait for a batch to fill up while sends are still running
DISPATCH_BATCH = 100
UNRECORDED_POOLS = 3  # in flight (one pool) + one batch being written + one gathering; see the docstring
LEASE_MARGIN = 1.0  # seconds (at most half the lease's spare time): a held row's send must start by
# lease end - send timeout - margin, so it always ends inside the lease and no other worker can claim it meanwhile


@dataclass(slots=True)
class Held:
    """A claimed row waiting for a free slot, and the monotonic time by which its send must start."""

    item: Claimed
    target: Any
    start_by: float


class DeliveryWorker:
    def __init__(self, db: Database, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.client = DeliveryClient(
            timeout=settings.webhook_timeout,
            allow_loopback=settings.allow_http_webhooks,
            concurrency=settings.delivery_concurrency,
        )
        self.lease = timedelta(seconds=max(settings.delivery_lease, settings.webhook_timeout + 1.0))
        self.index = IndexCache()
        self.targets = TargetCache(settings)
        self.running = 0  # sends in flight
        self.unrecorded = 0  # finished sends whose outcome is not yet written (queued or in the current batch)
        self.inflight: dict[tuple[str, int], int] = {}  # per target: rows claimed and not finished (held or sending)
        self.held: deque[Held] = deque()
        self.prefetch = settings.delivery_concurrency  # rows held in hand beyond the free slots
        self.state: dict[str, Any] = {"status": "starting", "sent": 0, "succeeded": 0, "failed": 0, "dispatched": 0}
        self.state |= {"claims": 0, "writes": 0, "lease_expired": 0}  # transactions, and held rows left to expire
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._listener = wakeup.CrossProcessListener(db)
        self._send_waiter: wakeup.Waiter | None = None
        self._event_waiter: wakeup.Waiter | None = None
        self._stopping = asyncio.Event()
        self._write_lock = asyncio.Lock() if db.engine.dialect.name == "sqlite" else None
        self._backlog = False  # start with a read: an idle worker never writes
        self.results: asyncio.Queue[Outcome | None] = asyncio.Queue()

    async def start(self) -> None:
        wakeup.install_session_hooks()
        self._stopping = asyncio.Event()
        self._event_waiter = wakeup.Waiter("events")
        self._send_waiter = wakeup.Waiter("deliveries")
        self._listener.start()
        self._tasks = [
            asyncio.create_task(self._guard(self._dispatch_loop), name="kamiyo-dispatch"),
            asyncio.create_task(self._guard(self._send_loop), name="kamiyo-send"),
            asyncio.create_task(self._write_loop(), name="kamiyo-write"),
        ]
        self.state["status"] = "running"

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let in-flight sends finish (up to `grace` s), record them, close.

        Loops are asked to stop and leave at a safe point, never cancelled inside a transaction
        (a cancelled SQLite write could keep its lock). Sends still running after `grace` are
        cancelled: their rows stay leased and are retried once the lease ends.
        """
        self.state["status"] = "stopping"
        self._stopping.set()
        for waiter in (self._event_waiter, self._send_waiter):
            if waiter is not None:
                waiter.set()
        await _finish(self._tasks[:2], self.settings.webhook_timeout + grace)
        await self._release_held()
        if self._sends:
            await asyncio.wait(list(self._sends), timeout=grace)
        for task in list(self._sends):
            task.cancel()
        self.results.put_nowait(None)
        await _finish(self._tasks[2:], 30.0)
        await self._listener.stop()
        for waiter in (self._event_waiter, self._send_waiter):
            if waiter is not None:
                waiter.close()
        await self.client.close()
        self.state["status"] = "stopped"

    async def _guard(self, loop: Callable[[], Any]) -> None:
        """Keep a loop alive through database outages: log, pause, go on (until asked to stop)."""
        while not self._stopping.is_set():
            try:
                await loop()
            except Exception as exc:
                log.warning("delivery loop %s failed: %s: %s", loop.__name__, type(exc).__name__, exc)
                self.state["last_error"] = f"{type(exc).__name__}"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)

    # -- dispatch ---------------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        assert self._event_waiter is not None
        async with self.db.session() as session:  # load the subscription index now, not on the first event
            await self.index.current(session)
        while not self._stopping.is_set():
            count = await self.dispatch_once()
            if count < DISPATCH_BATCH:
                await self._event_waiter.wait(self.settings.delivery_poll)

    async def dispatch_once(self) -> int:
        async with self.db.session() as session:  # a cheap read first: most wake-ups find nothing
            if not await has_pending_events(session):
                return 0
        async with self._writing(), self.db.session() as session:
            stats = await dispatch_events(
                session,
                self.index,
                now=self.clock(),
                max_age=self.settings.alert_max_age_delta,
                public_url=self.settings.public_url,
                limit=DISPATCH_BATCH,
            )
            if stats.webhook_rows or stats.alert_rows:
                wakeup.wake_after_commit(session, "deliveries")
        self.state["dispatched"] += stats.webhook_rows + stats.alert_rows
        return stats.events

    def _writing(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """SQLite has one writer: this process's loops take turns here instead of in SQLite's busy-wait."""
        return self._write_lock if self._write_lock is not None else contextlib.nullcontext()

    # -- send ---------------------------------------------------------------------------------------

    def _saturated(self, queue: str) -> list[int]:
        cap = self.settings.delivery_per_endpoint
        return [tid for (q, tid), n in self.inflight.items() if q == queue and n >= cap][:500]

    async def _send_loop(self) -> None:
        assert self._send_waiter is not None
        while not self._stopping.is_set():
            self._fill()
            room = self._claim_room()
            if not room:
                await self._send_waiter.wait(self.settings.delivery_poll)
                continue
            claimed, timeout = await self.claim_and_send(room)
            if claimed < room:
                await self._send_waiter.wait(timeout)

    def _claim_room(self) -> int:
        """How many rows to claim now: 0 while more than half the prefetch is still held (claims stay large)."""
        held = len(self.held)
        if held > self.prefetch // 2:
            return 0
        room = self.settings.delivery_concurrency - self.running + self.prefetch - held
        min_batch = max(1, self.settings.delivery_concurrency // 4)
        return room if room >= min_batch or not (self.running or held) else 0

    async def claim_and_send(self, room: int) -> tuple[int, float]:
        """Claim up to `room` due rows, hold them, start what the pool has room for.

        Returns (claimed, seconds to wait if nothing more is due).
        """
        now, leased_at = self.clock(), time.monotonic()  # the lease runs from `now`: start_by counts from here
        if not self._backlog:  # a read first: after a wake-up there is often nothing due yet
            async with self.db.session() as session:
                dues = [d for d in [await next_due(session, q) for q in QUEUES] if d is not None]
            if not dues or min(dues) > now:
                wait = (min(dues) - now).total_seconds() if dues else self.settings.delivery_poll
                return 0, min(max(wait, 0.001), self.settings.delivery_poll)
        claimed: list[Claimed] = []
        async with self._writing(), self.db.session() as session:
            for queue, limit in ((ALERTS, max(1, room // 4)), (WEBHOOKS, room)):
                claimed += await claim(
                    session,
                    queue,
                    now=now,
                    lease=self.lease,
                    limit=max(1, limit - len(claimed)),
                    exclude_targets=self._saturated(queue.name),
                )
            kept, excess = self._within_caps(claimed)
            for queue in QUEUES:  # a target's rows beyond its free slots go back at once, due as they were
                await release(session, queue, [c.id for c in excess if c.queue is queue], now)
            targets = await self.targets.load(session, kept)
        self._backlog = len(claimed) >= room
        self.state["claims"] += 1 if claimed else 0
        spare = self.lease.total_seconds() - self.settings.webhook_timeout  # at least 1 s (see __init__)
        start_by = leased_at + spare - min(LEASE_MARGIN, spare / 2)
        for item in kept:
            key = (item.queue.name, item.target_id)
            self.inflight[key] = self.inflight.get(key, 0) + 1
            self.held.append(Held(item, targets.get(key), start_by))
        self._fill()
        # Nothing claimable although something was due: busy targets; a finishing send wakes this loop.
        return len(claimed), self.settings.delivery_poll if claimed else 0.05

    def _within_caps(self, claimed: list[Claimed]) -> tuple[list[Claimed], list[Claimed]]:
        """Split a claim into rows to keep and rows beyond their target's free slots (held or sending)."""
        cap = self.settings.delivery_per_endpoint
        counts: dict[tuple[str, int], int] = {}
        kept: list[Claimed] = []
        excess: list[Claimed] = []
        for item in claimed:
            key = (item.queue.name, item.target_id)
            count = counts.get(key) or self.inflight.get(key, 0)
            counts[key] = count + 1
            (excess if count >= cap else kept).append(item)
        return kept, excess

    def _fill(self) -> None:
        """Start held rows while the pool has free slots; drop those whose lease is too close to its end."""
        pool = self.settings.delivery_concurrency
        free = min(pool - self.running, UNRECORDED_POOLS * pool - self.running - self.unrecorded)
        while free > 0 and self.held:
            held = self.held.popleft()
            if time.monotonic() > held.start_by:  # due again when its lease ends; not sent twice meanwhile
                self._forget(held.item)
                self.state["lease_expired"] += 1
                continue
            self._start_send(held.item, held.target)
            free -= 1

    def _forget(self, item: Claimed) -> None:
        key = (item.queue.name, item.target_id)
        self.inflight[key] -= 1
        if not self.inflight[key]:
            del self.inflight[key]

    async def _release_held(self) -> None:
        """On stop: give held rows back (due now) instead of leaving them leased; expired ones are not ours."""
        now, mono = self.clock(), time.monotonic()
        mine = [h.item for h in self.held if h.start_by > mono]
        for held in self.held:
            self._forget(held.item)
        self.held.clear()
        if not mine:
            return
        try:
            async with self._writing(), self.db.session() as session:
                for queue in QUEUES:
                    await release(session, queue, [c.id for c in mine if c.queue is queue], now)
        except Exception as exc:  # they are due again when their lease ends
            log.warning("could not give back %d claimed rows: %s", len(mine), type(exc).__name__)

    def _start_send(self, item: Claimed, target: Any) -> None:
        self.running += 1
        task = asyncio.create_task(self._send(item, target))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, item: Claimed, target: Any) -> None:
        started_at = self.clock()
        outcome: Outcome | None = None
        try:
            if target is None or (not target.enabled and item.event_type != CONFIRMATION):
                reason = "endpoint deleted" if target is None else f"endpoint disabled: {target.disabled_reason or ''}"
                outcome = Outcome(item, SendResult(error=reason.strip()), started_at, final=True, record_attempt=False)
            elif isinstance(target, ChannelTarget) and not target.confirmed and item.event_type != CONFIRMATION:
                # queued before its destination changed: the new one gets nothing until confirmed
                error = SendResult(error="channel not confirmed")
                outcome = Outcome(item, error, started_at, final=True, record_attempt=False)
            else:
                result = await send_one(self.client, self.settings, item, target, started_at)
                channel = target.kind if isinstance(target, ChannelTarget) else "webhook"
                extra = {"channel": channel, "failures_before": target.consecutive_failures}
                outcome = Outcome(item, result, started_at, extra=extra)
        finally:
            self.running -= 1
            self._forget(item)
            if outcome is not None:
                self.unrecorded += 1
                self.results.put_nowait(outcome)
            if not self._stopping.is_set():
                self._fill()
            if self._send_waiter is not None and len(self.held) <= self.prefetch // 2:
                self._send_waiter.set()  # time to claim more (or to look at a busy target's next row)

    # -- write --------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Record outcomes in batches until the stop sentinel (None) arrives after the last send."""
        finished = False
        while not (finished and self.results.empty()):
            first = await self.results.get()
            if first is not None:
                await self._gather()
            batch: list[Outcome] = []
            item: Outcome | None = first
            while True:
                if item is None:
                    finished = True
                else:
                    batch.append(item)
                if self.results.empty() or len(batch) >= WRITE_BATCH:
                    break
                item = self.results.get_nowait()
            try:
                await self._flush(batch)
            except Exception as exc:  # rows stay leased and are retried: at worst a duplicate attempt
                log.error("could not record %d outcomes: %s", len(batch), type(exc).__name__)
            self.unrecorded -= len(batch)
            if not self._stopping.is_set():
                self._fill()  # sends paused by a slow write start again

    async def _gather(self) -> None:
        """While sends are running, wait (up to WRITE_GATHER_MAX) for a pool's worth of outcomes.

        A transaction costs about 1.5 ms of CPU whatever its size (about 8 µs per outcome on top), so
        at full speed one per `delivery_concurrency` outcomes instead of one per 20 ms; what a crash can
        make a worker send twice stays within UNRECORDED_POOLS pools (see `_fill`). With nothing
        else running (one test send, the tail of a fan-out) it records at once.
        """
        wanted = min(WRITE_BATCH, self.settings.delivery_concurrency) - 1  # besides the one already taken
        until = time.monotonic() + WRITE_GATHER_MAX
        while self.running and self.results.qsize() < wanted and not self._stopping.is_set():
            if time.monotonic() >= until:
                return
            await asyncio.sleep(WRITE_GATHER)

    async def _flush(self, batch: list[Outcome]) -> None:
        if not batch:
            return
        for attempt in range(5):
            try:
                async with self._writing(), self.db.session() as session:
                    disabled = await record(
                        session,
                        batch,
                        now=self.clock(),
                        schedule=self.settings.retry_schedule_seconds,
                        disable_after=self.settings.webhook_disable_after,
                    )
                break
            except Exception as exc:
                if attempt == 4:
                    raise
                log.warning("recording %d outcomes failed (%s); retrying", len(batch), type(exc).__name__)
                await asyncio.sleep(0.2 * (attempt + 1))
        self.state["writes"] += 1
        ok = sum(1 for o in batch if o.result.ok)
        if ok < len(batch) and self._send_waiter is not None:
            self._send_waiter.set()  # retries were scheduled: let the send loop see their time
        self.state["sent"] += len(batch)
        self.state["succeeded"] += ok
        self.state["failed"] += len(batch) - ok
        for queue, target_id, reason in disabled:
            log.warning("%s %d disabled: %s", queue.name, target_id, reason)
        if disabled:
            notice = asyncio.create_task(tell_owners(self.db, self.settings, disabled, self.clock()))
            self._sends.add(notice)  # awaited on stop like a send
            notice.add_done_callback(self._sends.discard)
        observe(batch, self.clock())


async def _finish(tasks: list[asyncio.Task[None]], within: float) -> None:
    """Wait for tasks to end by themselves; cancel what is still running after `within` seconds."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
