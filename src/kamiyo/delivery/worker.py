"""The delivery worker: dispatch events into rows, claim due rows, send concurrently, record outcomes.

Three loops in one asyncio process (inside `kamiyo serve` or `kamiyo worker --deliver`):
- dispatch: woken by new events (commit hooks, LISTEN/NOTIFY, SQLite data_version), writes rows;
- send: claims due rows up to the free capacity (global pool, and a per-target cap by leaving busy
  targets out of the claim), starts one task per row; a slow receiver holds only its own slots;
- write: records finished attempts in batches, one transaction per batch.
Anything claimed but not recorded when the process dies is due again once its lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.delivery import channels, wakeup
from kamiyo.delivery.channels import webhook as webhook_channel
from kamiyo.delivery.client import DeliveryClient, SendResult
from kamiyo.delivery.dispatch import IndexCache, dispatch_events, has_pending_events
from kamiyo.delivery.notices import tell_owners
from kamiyo.delivery.queue import ALERTS, QUEUES, WEBHOOKS, Claimed, Outcome, claim, next_due, record
from kamiyo.delivery.targets import ChannelTarget, Target, TargetCache, WebhookTarget
from kamiyo.kit.timeutil import utcnow

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
WRITE_BATCH = 2000
WRITE_GATHER = 0.02  # seconds to gather outcomes into one transaction
DISPATCH_BATCH = 100


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
        self.running = 0
        self.inflight: dict[tuple[str, int], int] = {}
        self.state: dict[str, Any] = {"status": "starting", "sent": 0, "succeeded": 0, "failed": 0, "dispatched": 0}
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
        concurrency = self.settings.delivery_concurrency
        min_batch = max(1, concurrency // 4)
        while not self._stopping.is_set():
            free = concurrency - self.running
            # Near capacity, wait for more sends to finish: fewer, larger claim transactions.
            if free <= 0 or (self.running and free < min_batch):
                await self._send_waiter.wait(self.settings.delivery_poll)
                continue
            started, timeout = await self.claim_and_send(free)
            if started < free:
                await self._send_waiter.wait(timeout)

    async def claim_and_send(self, free: int) -> tuple[int, float]:
        """Claim up to `free` due rows and start their sends. Returns (started, seconds to wait if idle)."""
        now = self.clock()
        if not self._backlog:  # a read first: after a wake-up there is often nothing due yet
            async with self.db.session() as session:
                dues = [d for d in [await next_due(session, q) for q in QUEUES] if d is not None]
            if not dues or min(dues) > now:
                wait = (min(dues) - now).total_seconds() if dues else self.settings.delivery_poll
                return 0, min(max(wait, 0.001), self.settings.delivery_poll)
        claimed: list[Claimed] = []
        async with self._writing(), self.db.session() as session:
            claimed += await claim(
                session,
                ALERTS,
                now=now,
                lease=self.lease,
                limit=max(1, free // 4),
                exclude_targets=self._saturated("alert"),
            )
            claimed += await claim(
                session,
                WEBHOOKS,
                now=now,
                lease=self.lease,
                limit=max(1, free - len(claimed)),
                exclude_targets=self._saturated("webhook"),
            )
            targets = await self.targets.load(session, claimed)
        self._backlog = len(claimed) >= free
        for item in claimed:
            self._start_send(item, targets.get((item.queue.name, item.target_id)))
        # Nothing claimable although something was due: busy targets; a finishing send wakes this loop.
        return len(claimed), self.settings.delivery_poll if claimed else 0.05

    def _start_send(self, item: Claimed, target: Any) -> None:
        key = (item.queue.name, item.target_id)
        self.running += 1
        self.inflight[key] = self.inflight.get(key, 0) + 1
        task = asyncio.create_task(self._send(item, target))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, item: Claimed, target: Any) -> None:
        key = (item.queue.name, item.target_id)
        started_at = self.clock()
        outcome: Outcome | None = None
        try:
            if target is None or not target.enabled:
                reason = "endpoint deleted" if target is None else f"endpoint disabled: {target.disabled_reason or ''}"
                outcome = Outcome(item, SendResult(error=reason.strip()), started_at, final=True, record_attempt=False)
            else:
                result = await send_one(self.client, self.settings, item, target, started_at)
                channel = target.kind if isinstance(target, ChannelTarget) else "webhook"
                extra = {"channel": channel, "failures_before": target.consecutive_failures}
                outcome = Outcome(item, result, started_at, extra=extra)
        finally:
            self.running -= 1
            self.inflight[key] -= 1
            if not self.inflight[key]:
                del self.inflight[key]
            if outcome is not None:
                self.results.put_nowait(outcome)
            if self._send_waiter is not None:
                self._send_waiter.set()

    # -- write --------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Record outcomes in batches until the stop sentinel (None) arrives after the last send.

        After the first outcome it waits a few ms so that one transaction records many.
        """
        finished = False
        while not (finished and self.results.empty()):
            first = await self.results.get()
            if first is not None and self.results.qsize() < WRITE_BATCH and not self._stopping.is_set():
                await asyncio.sleep(WRITE_GATHER)
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
        _observe(batch, self.clock())


async def send_one(
    client: DeliveryClient, settings: Settings, item: Claimed, target: Target | None, now: datetime
) -> SendResult:
    """One attempt of one claimed row to its target."""
    if target is None:
        return SendResult(error="target deleted")
    if isinstance(target, WebhookTarget):
        return await webhook_channel.send(client, target.url, item.message_id, item.body, target.secrets(now), now)
    message = orjson.loads(item.body)
    return await channels.send_alert(target.kind, client, target.destination, message, now, settings)


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


def _observe(batch: list[Outcome], now: datetime) -> None:
    """Metrics: one count per attempt by channel and outcome; latency from queueing to success."""
    from kamiyo.ops.metrics import record_delivery

    for outcome in batch:
        if not outcome.record_attempt:
            continue
        channel = str(outcome.extra.get("channel", outcome.claimed.queue.name))
        queued = outcome.claimed.created_at
        seconds = (now - queued).total_seconds() if outcome.result.ok and queued else None
        with contextlib.suppress(Exception):  # metrics never break delivery
            record_delivery(channel, "succeeded" if outcome.result.ok else "failed", seconds)
