"""UTC helpers: Kamiyo stores and serves UTC only."""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_when(text: str, *, end_of_day: bool = False) -> datetime:
    """ISO-8601 date or datetime → aware UTC. A bare date means its start (or its end, for `until`)."""
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def iso(value: datetime | None) -> str | None:
    """ISO-8601 with a `Z`, seconds precision unless sub-second data exists."""
    if value is None:
        return None
    value = as_utc(value)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")
