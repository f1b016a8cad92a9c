"""When to try again: the configured schedule, stretched by a receiver's `Retry-After` on 429/503."""

from __future__ import annotations

from datetime import datetime

from kamiyo.kit import retry_after

MAX_RETRY_AFTER = 86400.0
RETRY_AFTER_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a receiver's `Retry-After` asks for, capped at a day; None if absent or unreadable."""
    return retry_after.parse_retry_after(value, now, MAX_RETRY_AFTER)


def next_delay(schedule: list[float], attempts_done: int, retry_after: float | None) -> float | None:
    """Delay before the next attempt after `attempts_done` attempts, or None when the schedule is exhausted."""
    if attempts_done > len(schedule):
        return None
    delay = schedule[attempts_done - 1]
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
