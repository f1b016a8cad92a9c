"""When to try again: the configured schedule, stretched by a receiver's `Retry-After` on 429/503."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 86400.0
RETRY_AFTER_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), capped at a day; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_delay(schedule: list[float], attempts_done: int, retry_after: float | None) -> float | None:
    """Delay before the next attempt after `attempts_done` attempts, or None when the schedule is exhausted."""
    if attempts_done > len(schedule):
        return None
    delay = schedule[attempts_done - 1]
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
