"""Source state as the API shows it: the registry joined with each source's recorded runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.ingest.models import SourceState
from kamiyo.kit.timeutil import iso, utcnow
from kamiyo.sources import REGISTRY


def is_healthy(state: SourceState | None) -> bool:
    return bool(state and state.enabled and state.last_success_at and state.consecutive_failures == 0)


async def source_states(session: AsyncSession) -> dict[str, SourceState]:
    return {s.name: s for s in (await session.execute(select(SourceState))).scalars()}


async def list_sources(session: AsyncSession) -> list[dict[str, Any]]:
    states = await source_states(session)
    result = []
    for name, info in REGISTRY.items():
        state = states.get(name)
        result.append(
            {
                "name": name,
                "title": info.title,
                "url": info.url,
                "kind": info.kind,
                "enabled": state.enabled if state else True,
                "healthy": is_healthy(state),
                "last_success_at": iso(state.last_success_at) if state else None,
                "last_error": state.last_error if state else None,
                "items": state.items if state else 0,
                "disabled_reason": state.disabled_reason if state else None,
                "last_run_at": iso(state.last_run_at) if state else None,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "latency_ms": state.latency_ms if state else None,
            }
        )
    return result


async def record_run(
    session: AsyncSession,
    name: str,
    *,
    ok: bool,
    items: int = 0,
    error: str | None = None,
    latency_ms: float | None = None,
    at: datetime | None = None,
) -> SourceState:
    """Book one fetch of a source: success resets the failure streak, failure extends it."""
    at = at or utcnow()
    info = REGISTRY[name]
    state = await session.get(SourceState, name)
    if state is None:
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
    state.last_run_at = at
    state.runs += 1
    state.latency_ms = latency_ms
    if ok:
        state.last_success_at = at
        state.consecutive_failures = 0
        state.last_error = None
        state.items = items
    else:
        state.failures += 1
        state.consecutive_failures += 1
        state.last_error = (error or "unknown error")[:2000]
    return state
