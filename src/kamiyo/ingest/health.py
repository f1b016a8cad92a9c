"""Source state as the API shows it: the registry joined with each source's recorded runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.models import ReportRow
from kamiyo.ingest.models import SourceHttpCache, SourceRun, SourceState
from kamiyo.kit.timeutil import iso, utcnow
from kamiyo.sources import REGISTRY


def is_healthy(state: SourceState | None) -> bool:
    return bool(state and state.enabled and state.last_success_at and state.consecutive_failures == 0)


async def source_states(session: AsyncSession) -> dict[str, SourceState]:
    return {s.name: s for s in (await session.execute(select(SourceState))).scalars()}


def key_missing(name: str) -> str | None:
    """ "needs X" when the source declares a key and the environment variable X is not set."""
    needs = REGISTRY[name].needs_key
    return f"needs {needs}" if needs and not os.environ.get(needs) else None


async def list_sources(session: AsyncSession) -> list[dict[str, Any]]:
    states = await source_states(session)
    result = []
    for name, info in REGISTRY.items():
        state = states.get(name)
        missing = key_missing(name)
        result.append(
            {
                "name": name,
                "title": info.title,
                "url": info.url,
                "kind": info.kind,
                "enabled": (state.enabled if state else True) and missing is None,
                "healthy": is_healthy(state),
                "last_success_at": iso(state.last_success_at) if state else None,
                "last_error": state.last_error if state else None,
                "items": state.items if state else 0,
                "disabled_reason": missing or (state.disabled_reason if state else None),
                "last_run_at": iso(state.last_run_at) if state else None,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "latency_ms": state.latency_ms if state else None,
            }
        )
    return result


async def _state(session: AsyncSession, name: str) -> SourceState:
    state = await session.get(SourceState, name)
    if state is None:
        info = REGISTRY[name]
        state = SourceState(
            name=name,
            title=info.title,
            url=info.url,
            kind=info.kind,
            enabled=True,
            consecutive_failures=0,
            runs=0,
            failures=0,
            items=0,
        )
        session.add(state)
        await session.flush()  # so that a second call in this session finds it (autoflush is off)
    return state


async def record_run(
    session: AsyncSession,
    name: str,
    *,
    ok: bool,
    items: int | None = 0,
    error: str | None = None,
    latency_ms: float | None = None,
    at: datetime | None = None,
    new: int = 0,
    updated: int = 0,
) -> SourceState:
    """Book one fetch of a source: success resets the failure streak, failure extends it.

    Also appends the run to `source_runs` (uptime in the rankings). `items=None` keeps the last
    count (a 304 Not Modified run). A fetch books its `latency_ms`; a run without one fetched nothing.
    """
    at = at or utcnow()
    state = await _state(session, name)
    state.enabled, state.disabled_reason = True, None
    state.last_run_at = at
    state.runs += 1
    state.latency_ms = latency_ms
    if ok:
        state.last_success_at = at
        state.consecutive_failures = 0
        state.last_error = None
        if items is not None:
            state.items = items
    else:
        state.failures += 1
        state.consecutive_failures += 1
        state.last_error = (error or "unknown error")[:2000]
    session.add(
        SourceRun(source=name, started_at=at, ok=ok, items=items or 0, new=new, updated=updated,
                  latency_ms=latency_ms, error=None if ok else state.last_error)
    )  # fmt: skip
    return state


async def mark_disabled(session: AsyncSession, name: str, reason: str) -> None:
    """A source that cannot run (its key is missing): shown as disabled with the reason, not failing."""
    state = await _state(session, name)
    state.enabled, state.disabled_reason = False, reason[:500]


@dataclass(frozen=True)
class RunContext:
    """What a run needs from the database before fetching."""

    last_run_at: datetime | None
    validators: dict[str, dict[str, str]]
    known_refs: frozenset[str]
    last_fetch_at: datetime | None = None  # start of the latest successful fetch (report times, see report_times)


async def load_run_context(session: AsyncSession, name: str) -> RunContext:
    state = await session.get(SourceState, name)
    cached = await session.execute(select(SourceHttpCache).where(SourceHttpCache.source == name))
    validators = {
        row.url: {k: v for k, v in (("etag", row.etag), ("last_modified", row.last_modified)) if v}
        for row in cached.scalars()
    }
    refs = await session.execute(select(ReportRow.source_ref).where(ReportRow.source == name))
    return RunContext(
        state.last_run_at if state else None, validators, frozenset(refs.scalars()), await last_fetch_at(session, name)
    )


async def last_fetch_at(session: AsyncSession, name: str) -> datetime | None:
    """Start of the source's latest successful fetch. A run booked without a latency fetched nothing (the
    bundled seed books one so health shows its items): it does not count, its data is a past snapshot."""
    latest = await session.execute(
        select(func.max(SourceRun.started_at)).where(
            SourceRun.source == name, SourceRun.ok, SourceRun.latency_ms.is_not(None)
        )
    )
    return latest.scalar_one_or_none()


async def forget_validators(session: AsyncSession) -> None:
    """Drop every source's ETag / Last-Modified, so each source's next run reads its feeds in full and its stored
    reports pick up what a newer parser reads from them (caches of other feeds keep theirs)."""
    await session.execute(delete(SourceHttpCache).where(SourceHttpCache.source.in_(list(REGISTRY))))


async def save_validators(session: AsyncSession, name: str, seen: dict[str, dict[str, str]]) -> None:
    """Remember the ETag / Last-Modified of every URL fetched in a successful run."""
    if not seen:
        return
    await session.execute(
        delete(SourceHttpCache).where(SourceHttpCache.source == name, SourceHttpCache.url.in_(list(seen)))
    )
    rows = [
        {"source": name, "url": url[:1000], "etag": (v.get("etag") or "")[:500] or None,
         "last_modified": (v.get("last_modified") or "")[:100] or None}
        for url, v in seen.items()
        if v
    ]  # fmt: skip
    if rows:
        await session.execute(insert(cast(Table, SourceHttpCache.__table__)), rows)
