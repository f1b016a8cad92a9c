"""Kamiyo's background work, started in one place for both shapes of deployment: inside the API process
(`kamiyo serve`, unless `--no-workers`) and alone (`kamiyo worker`).

The parts: the ingest scheduler with the enrichment jobs beside it (not offline), the delivery worker, and the
scheduled backup. Each has `start()`/`stop()`; `status` is what `/health` shows under `workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kamiyo.config import Settings
from kamiyo.db import Database

log = logging.getLogger(__name__)


class Part(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


P = TypeVar("P", bound=Part)


class Workers:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.parts: list[Part] = []
        self.status: dict[str, Any] = {"ingest": "off", "delivery": "off"}

    async def start(self, *, ingest: bool, deliver: bool, backups: bool) -> list[str]:
        """Start what is asked (and allowed: no ingest or enrichment offline); the names of what runs."""
        names: list[str] = []
        if ingest and self.settings.offline:
            self.status["ingest"] = "offline"
        elif ingest:
            from kamiyo.enrich.schedule import EnrichScheduler
            from kamiyo.ingest.scheduler import IngestScheduler

            scheduler = await self._start(IngestScheduler(self.db, self.settings))
            enrich = await self._start(EnrichScheduler(self.db, self.settings))
            self.status["ingest"], self.status["enrich"] = scheduler.status, enrich.status
            names.append(f"ingest scheduler ({len(scheduler.sources)} sources)")
            names.append(f"enrichment ({', '.join(enrich.status['jobs'])})")
        if deliver:
            from kamiyo.delivery.worker import DeliveryWorker

            worker = await self._start(DeliveryWorker(self.db, self.settings))
            self.status["delivery"] = worker.state
            names.append("delivery worker")
        if backups and self.settings.backup_interval_seconds > 0:
            from kamiyo.ops.schedule import BackupScheduler

            await self._start(BackupScheduler(self.settings))
            names.append(f"backups into {self.settings.backup_path} every {self.settings.backup_interval}")
        if names:
            log.info("background work started", extra={"parts": names})
        return names

    async def _start(self, part: P) -> P:
        await part.start()
        self.parts.append(part)
        return part

    async def stop(self) -> None:
        while self.parts:
            await self.parts.pop().stop()


async def run_alone(settings: Settings, *, ingest: bool, deliver: bool, say: Callable[[str], None]) -> None:
    """`kamiyo worker`: background work alone (beside `serve --no-workers`) until SIGINT/SIGTERM."""
    db = Database(settings.database_url)
    workers = Workers(db, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if ingest and settings.offline:
            say("[yellow]KAMIYO_OFFLINE is set: the ingest scheduler does not run")
        running = await workers.start(ingest=ingest, deliver=deliver, backups=True)
        if not running:
            say("nothing to run")
            return
        say("running: " + "; ".join(running))
        await stop.wait()
    finally:
        await workers.stop()
        await db.dispose()
