"""When a source first published a report (`reports.reported_at`): its own time, a bounded fetch time, or unknown.

A post, an alert or a feed item states when it was published: that time is kept (never later than the fetch
that found it; a stated time in the future is not believable). A list or dataset without publication times
(DeFiLlama, SlowMist, DeFiHackLabs, De.Fi REKT) states none. A report of it that Kamiyo had not stored before
was published between the source's previous successful fetch and this one, so when that fetch is recent
(within `known_gap`) this fetch's time is its report time, known within the cadence. On a source's first
fetch, or after a gap too long to bound, it is the backfill of the source's history: the time stays unknown
(None), and the rankings leave it out of speed and exclusivity.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from kamiyo.sources.base import Report

MIN_GAP = timedelta(days=1)


def known_gap(cadence_seconds: int) -> timedelta:
    """How long after a successful fetch a newly listed item still counts as published since it: two
    cadences (a missed round), at least a day."""
    return max(2 * timedelta(seconds=cadence_seconds), MIN_GAP)


def stamp(reports: Iterable[Report], fetched_at: datetime, previous_fetch_at: datetime | None, gap: timedelta) -> None:
    """Set each report's `reported_at` by the rules above (in place). Stored reports keep their stored time:
    the store never rewrites `reported_at`, so stamping a report Kamiyo already has changes nothing."""
    bounded = previous_fetch_at is not None and fetched_at - previous_fetch_at <= gap
    for report in reports:
        if report.reported_at is not None:
            report.reported_at = min(report.reported_at, fetched_at)
        elif bounded:
            report.reported_at = fetched_at
