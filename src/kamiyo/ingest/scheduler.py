"""The ingest scheduler: one round now (`kamiyo ingest`) or every source at its cadence (serve, worker).

Sources run concurrently, each under its own deadline, so one failing or slow source never
delays the others. In the loop, each source waits its cadence with ±10 % jitter; while failing
it retries sooner, backing off exponentially from BACKOFF_START up to its cadence.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from kamiyo.config import Settings
from kamiyo.db import Database, async_url
from kamiyo.ingest.health import source_states
from kamiyo.ingest.runner import IngestOptions, RunOutcome, run_source
from kamiyo.kit.tasks import cancel_and_wait
from kamiyo.kit.timeutil import iso, utcnow
from kamiyo.sources import REGISTRY, Source, get_source
from kamiyo.sources.http import FetchPolicy, new_client

log = logging.getLogger(__name__)
JITTER = 0.1
BACKOFF_START = 60.0
FIRST_RUN_SPREAD = 10.0  # seconds over which due sources start, so they do not all fire at once


def options_from(settings: Settings) -> IngestOptions:
    return IngestOptions(
        source_urls=dict(settings.source_urls),
        policy=FetchPolicy(timeout=settings.source_timeout),
        deadline=settings.source_deadline,
        alert_max_age=settings.alert_max_age_delta,
    )


def select_sources(names: Iterable[str] | None) -> list[Source]:
    """The named sources (KeyError for an unknown name), or all registered ones."""
    return [get_source(n) for n in names] if names else list(REGISTRY.values())


def lock_engine_for(db: Database) -> AsyncEngine | None:
    """A separate, unpooled engine for the per-source advisory locks (PostgreSQL only)."""
    if db.engine.dialect.name != "postgresql":
        return None
    return create_async_engine(async_url(db.url), poolclass=NullPool)


async def run_round(
    db: Database,
    options: IngestOptions,
    sources: Iterable[Source] | None = None,
    *,
    on_done: Callable[[RunOutcome], None] | None = None,
    client: httpx.AsyncClient | None = None,
) -> list[RunOutcome]:
    """Run every given source once, concurrently; outcomes in the order of `sources`."""
    chosen = list(sources) if sources is not None else list(REGISTRY.values())
    store_lock = asyncio.Lock()
    lock_engine = lock_engine_for(db)
    own_client = client is None
    http = client or new_client()

    async def one(source: Source) -> RunOutcome:
        outcome = await run_source(db, source, http, options, store_lock=store_lock, lock_engine=lock_engine)
        if on_done is not None:
            on_done(outcome)
        return outcome

    try:
        return list(await asyncio.gather(*(one(source) for source in chosen)))
    finally:
        if own_client:
            await http.aclose()
        if lock_engine is not None:
            await lock_engine.dispose()


def next_delay(source: Source, outcome: RunOutcome | None, failures: int) -> float:
    """Seconds until the next run: the cadence ±10 %, or exponential backoff while failing."""
    base = float(source.cadence_seconds)
    if outcome is not None and outcome.failed:
        base = min(base, BACKOFF_START * 2 ** max(0, failures - 1))
    return base * random.uniform(1 - JITTER, 1 + JITTER)


class IngestScheduler:
    """Each source in its own task at its cadence, inside `kamiyo serve` or `kamiyo worker`.

    `status` is a plain dict shown under `workers.ingest` in `/health`.
    """

    def __init__(self, db: Database, settings: Settings, sources: Iterable[Source] | None = None) -> None:
        self.db = db
        self.options = options_from(settings)
        self.sources = list(sources) if sources is not None else list(REGISTRY.values())
        self.status: dict[str, Any] = {"state": "starting", "sources": len(self.sources), "running": [], "runs": 0}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._lock_engine: AsyncEngine | None = None
        self._store_lock = asyncio.Lock()

    async def start(self) -> None:
        self._client = new_client()
        self._lock_engine = lock_engine_for(self.db)
        if self._lock_engine is not None:  # several workers: skip a source another one ran recently
            shortest = min((s.cadence_seconds for s in self.sources), default=3600)
            self.options = replace(self.options, min_interval=shortest / 2)
        delays = await self._initial_delays()
        self._tasks = [
            asyncio.create_task(self._loop(s, delays[s.name]), name=f"ingest:{s.name}") for s in self.sources
        ]
        self.status["state"] = "running"

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
        if self._lock_engine is not None:
            await self._lock_engine.dispose()
        self.status["state"] = "stopped"

    async def _initial_delays(self) -> dict[str, float]:
        """Sources never run or overdue start within FIRST_RUN_SPREAD s; the rest when due."""
        async with self.db.session() as session:
            states = await source_states(session)
        now = utcnow()
        delays = {}
        for source in self.sources:
            state = states.get(source.name)
            spread = random.uniform(0, FIRST_RUN_SPREAD)
            if state is None or state.last_run_at is None:
                delays[source.name] = spread
                continue
            due = state.last_run_at + timedelta(seconds=next_delay(source, None, 0))
            delays[source.name] = max(spread, (due - now).total_seconds())
        return delays

    async def _loop(self, source: Source, delay: float) -> None:
        failures = 0
        while True:
            await asyncio.sleep(delay)
            assert self._client is not None
            self.status["running"].append(source.name)
            try:
                outcome = await run_source(self.db, source, self._client, self.options,
                                           store_lock=self._store_lock, lock_engine=self._lock_engine)  # fmt: skip
            except Exception:  # the database itself failed; keep the loop alive and retry later
                log.exception("ingest run failed", extra={"source": source.name})
                outcome = RunOutcome(source.name, "failed", error="internal error")
            finally:
                self.status["running"].remove(source.name)
            failures = failures + 1 if outcome.failed else 0
            self.status["runs"] += 1
            self.status["last_run_at"] = iso(utcnow())
            delay = next_delay(source, outcome, failures)
