"""The enrichment jobs on a timer, beside the ingest scheduler (in `kamiyo worker`, and in `kamiyo serve` when
it runs the workers): on-chain verification every few minutes, pricing of token losses every hour, the label
feeds once a day.

Verification runs on each EVM chain's public endpoint unless KAMIYO_RPC_URLS turns every chain off; every job
is off with KAMIYO_OFFLINE. On PostgreSQL each job runs on one worker at a time (the advisory-lock leadership
the sources use), so several workers never ask a node about the same transactions at once. A job that fails is
logged and tried again at its next turn; nothing here is lost by a restart (verification keeps its schedule in
`onchain_checks`, an unchanged label feed costs a 304, a price is asked once and kept in `price_quotes`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.enrich.evm_rpc import evm_rpc_urls
from kamiyo.enrich.onchain import verify_pending
from kamiyo.enrich.prices import price_pending
from kamiyo.enrich.refresh import refresh_labels
from kamiyo.ingest.runner import leadership
from kamiyo.ingest.scheduler import lock_engine_for
from kamiyo.kit.tasks import cancel_and_wait
from kamiyo.kit.timeutil import iso, utcnow

log = logging.getLogger(__name__)
VERIFY_EVERY_S = 300.0
LABELS_EVERY_S = 86_400.0
PRICES_EVERY_S = 3_600.0
FIRST_RUN_AFTER_S = 60.0  # let a starting process settle (and short-lived ones, such as tests, do nothing)
VERIFY_BATCH = 200


@dataclass(frozen=True)
class Job:
    name: str
    every: float
    run: Callable[[], Awaitable[Any]]


class EnrichScheduler:
    """`start()`/`stop()` around one loop per job; `status` is shown under `workers.enrich` in `/health`."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        verify_every: float = VERIFY_EVERY_S,
        labels_every: float = LABELS_EVERY_S,
        prices_every: float = PRICES_EVERY_S,
        first_after: float = FIRST_RUN_AFTER_S,
    ) -> None:
        self.db = db
        self.first_after = first_after
        self.jobs = [Job("labels", labels_every, lambda: refresh_labels(db, urls=dict(settings.source_urls)))]
        if evm_rpc_urls(settings):
            self.jobs.append(Job("verify", verify_every, lambda: verify_pending(db, settings, limit=VERIFY_BATCH)))
        self.jobs.append(Job("prices", prices_every, lambda: price_pending(db, settings)))
        self.status: dict[str, Any] = {"state": "starting", "jobs": [job.name for job in self.jobs], "runs": {}}
        self._tasks: list[asyncio.Task[None]] = []
        self._lock_engine: AsyncEngine | None = None

    async def start(self) -> None:
        self._lock_engine = lock_engine_for(self.db)
        self._tasks = [asyncio.create_task(self._loop(job), name=f"enrich:{job.name}") for job in self.jobs]
        self.status["state"] = "running"

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._lock_engine is not None:
            await self._lock_engine.dispose()
        self.status["state"] = "stopped"

    async def run_once(self, job: Job) -> bool:
        """One turn of `job` if this process leads it now; whether it ran."""
        async with leadership(self._lock_engine, f"job.{job.name}") as leader:
            if not leader:
                return False
            try:
                await job.run()
                outcome = "ok"
            except Exception:  # a broken feed or node must not end the loop
                log.exception("enrichment job failed", extra={"job": job.name})
                outcome = "failed"
        self.status["runs"][job.name] = {"at": iso(utcnow()), "outcome": outcome}
        return True

    async def _loop(self, job: Job) -> None:
        await asyncio.sleep(self.first_after)
        while True:
            await self.run_once(job)
            await asyncio.sleep(job.every)
