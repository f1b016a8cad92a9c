"""Run one source once: lead, fetch, validate, time, store, book — never raising into the round.

Each report's `reported_at` is its own publication time or, for a list without one, this fetch's time
when the previous fetch was recent, else unknown (`kamiyo.ingest.report_times`).

The fetch happens outside any transaction; storing is one transaction, serialised within the
process (SQLite has one writer) and across processes on PostgreSQL (an advisory transaction lock,
so two workers never create the same incident twice). Each source has one leader at a time on
PostgreSQL: `pg_try_advisory_lock` on a connection of its own, held for the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from kamiyo.db import Database
from kamiyo.ingest import report_times, validate
from kamiyo.ingest.health import load_run_context, mark_disabled, record_run, save_validators
from kamiyo.ingest.store import store_reports
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import ParseError, Report, Source
from kamiyo.sources.http import Fetcher, FetchError, FetchPolicy, SourceContext

log = logging.getLogger(__name__)
STORE_LOCK_KEY = 0x4B414D49  # "KAMI": serialises storing across worker processes on PostgreSQL


@dataclass(frozen=True)
class IngestOptions:
    """How a round fetches: endpoint overrides, HTTP policy, per-source deadline, alert window."""

    source_urls: dict[str, str] = field(default_factory=dict)
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    deadline: float = 300.0  # seconds one source may take in total (all requests, parsing)
    alert_max_age: timedelta = timedelta(days=7)
    min_interval: float = 0.0  # skip a source another worker ran less than this many seconds ago

    def url_for(self, source: Source) -> str:
        return self.source_urls.get(source.name) or source.endpoint


@dataclass
class RunOutcome:
    """What one source's run did, for the CLI table, the scheduler and the logs."""

    source: str
    status: str  # ok | not_modified | failed | disabled | skipped
    items: int = 0
    new: int = 0
    updated: int = 0
    dropped: int = 0
    latency_ms: float = 0.0
    error: str | None = None
    requests: int = 0

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def source_key(source: Source) -> str | None:
    """The API key a source needs, from the environment variable it names."""
    return os.environ.get(source.needs_key) or None if source.needs_key else None


async def fetch_reports(source: Source, ctx: SourceContext) -> list[Report]:
    """The source's reports: its own `fetch`, or one conditional GET of the endpoint and `parse`."""
    if source.fetch is not None:
        return list(await source.fetch(ctx))
    assert source.parse is not None
    document = await ctx.get(ctx.url)
    return [] if document is None else list(source.parse(document))


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"kamiyo.source.{name}".encode()).digest()[:8], "big", signed=True)


@asynccontextmanager
async def leadership(lock_engine: AsyncEngine | None, name: str) -> AsyncIterator[bool]:
    """True when this process may run `name` now (always on SQLite: one process is assumed)."""
    if lock_engine is None:
        yield True
        return
    async with lock_engine.connect() as conn:
        key = _lock_id(name)
        got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar())
        try:
            yield got
        finally:
            if got:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@asynccontextmanager
async def writing(db: Database, store_lock: asyncio.Lock) -> AsyncIterator[AsyncSession]:
    """A write transaction, one at a time: the process's lock, then the database's.

    SQLite: a first (empty) write takes the write lock before anything is read, so the transaction never
    has to upgrade a stale read snapshot ("database is locked") and waits its turn instead. PostgreSQL:
    an advisory transaction lock serialises storing across worker processes.
    """
    async with store_lock, db.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STORE_LOCK_KEY})
        else:
            await session.execute(text("UPDATE sources SET name = name WHERE 1 = 0"))
        yield session


async def run_source(
    db: Database,
    source: Source,
    client: httpx.AsyncClient,
    options: IngestOptions,
    *,
    store_lock: asyncio.Lock,
    lock_engine: AsyncEngine | None = None,
) -> RunOutcome:
    """One run of `source`; every failure becomes a booked, reported outcome."""
    key = source_key(source)
    if source.needs_key and key is None:
        async with writing(db, store_lock) as session:
            await mark_disabled(session, source.name, f"needs {source.needs_key}")
        return RunOutcome(source.name, "disabled", error=f"needs {source.needs_key}")
    async with leadership(lock_engine, source.name) as leader:
        if not leader:
            return _skipped(source.name, "another worker is running it")
        return await _lead(db, source, client, options, key, store_lock)


async def _lead(
    db: Database,
    source: Source,
    client: httpx.AsyncClient,
    options: IngestOptions,
    key: str | None,
    store_lock: asyncio.Lock,
) -> RunOutcome:
    async with db.session() as session:
        context = await load_run_context(session, source.name)
    if options.min_interval and _ran_within(context.last_run_at, options.min_interval):
        return _skipped(source.name, "ran recently (another worker)")
    started, clock = utcnow(), time.perf_counter()
    fetcher = Fetcher(client, options.policy, context.validators)
    ctx = SourceContext(fetcher, options.url_for(source), key, context.known_refs)
    outcome = RunOutcome(source.name, "ok")
    reports: list[Report] = []
    try:
        async with asyncio.timeout(options.deadline):
            reports = await fetch_reports(source, ctx)
    except TimeoutError:
        outcome.status, outcome.error = "failed", f"no answer within {options.deadline:g} s"
    except (FetchError, ParseError) as exc:
        outcome.status, outcome.error = "failed", str(exc)
    except Exception as exc:  # a parser bug must cost this source's round, never the others'
        log.exception("source crashed", extra={"source": source.name})
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
    outcome.requests = fetcher.requests
    report_times.stamp(reports, utcnow(), context.last_fetch_at, report_times.known_gap(source.cadence_seconds))
    if not outcome.failed and not reports and fetcher.not_modified and fetcher.not_modified == fetcher.requests:
        outcome.status = "not_modified"
    await _book(db, source, outcome, reports, fetcher, options, started, clock, store_lock)
    return outcome


async def _book(
    db: Database,
    source: Source,
    outcome: RunOutcome,
    reports: list[Report],
    fetcher: Fetcher,
    options: IngestOptions,
    started: datetime,
    clock: float,
    store_lock: asyncio.Lock,
) -> None:
    """Store the reports and book the run in one transaction; if storing fails, book the failure."""
    cleaned = [r for r in (validate.clean(r) for r in reports if r.source == source.name) if r is not None]
    outcome.items, outcome.dropped = len(reports), len(reports) - len(cleaned)
    if not outcome.failed:
        try:
            async with writing(db, store_lock) as session:
                result = await store_reports(session, cleaned, notify_since=utcnow() - options.alert_max_age)
                outcome.new, outcome.updated = len(result.created), len(result.updated)
                outcome.latency_ms = (time.perf_counter() - clock) * 1000
                items = None if outcome.status == "not_modified" else len(cleaned)  # a 304 keeps the last count
                await record_run(session, source.name, ok=True, items=items, latency_ms=outcome.latency_ms,
                                 at=started, new=outcome.new, updated=outcome.updated)  # fmt: skip
                await save_validators(session, source.name, fetcher.seen_validators)
        except Exception as exc:
            log.exception("storing failed", extra={"source": source.name})
            outcome.status, outcome.error = "failed", f"storing failed: {type(exc).__name__}: {exc}"
    if outcome.failed:
        outcome.latency_ms = (time.perf_counter() - clock) * 1000
        async with writing(db, store_lock) as session:
            await record_run(session, source.name, ok=False, error=outcome.error, latency_ms=outcome.latency_ms,
                             at=started)  # fmt: skip
    _count(outcome)
    log.info(
        "source run",
        extra={k: getattr(outcome, k) for k in ("source", "status", "items", "new", "updated", "latency_ms", "error")},
    )


def _count(outcome: RunOutcome) -> None:
    try:
        from kamiyo.ops.metrics import record_ingest_run
    except ImportError:  # pragma: no cover - metrics are optional
        return
    record_ingest_run(outcome.source, outcome.status, outcome.items)


def _skipped(name: str, why: str) -> RunOutcome:
    """Another worker leads this source: counted (outcome "skipped") so an operator sees the sharing."""
    outcome = RunOutcome(name, "skipped", error=why)
    _count(outcome)
    return outcome


def _ran_within(last_run_at: datetime | None, seconds: float) -> bool:
    return last_run_at is not None and (utcnow() - last_run_at).total_seconds() < seconds
