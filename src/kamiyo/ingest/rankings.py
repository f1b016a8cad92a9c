"""Source rankings (`GET /sources/rankings`): who reports incidents first, alone, fully, correctly, reliably.

Window: incidents (non-test exploits) whose incident time is within the last `days` days, and the
runs of each source started in that window. Speed and exclusivity use only reports whose time is
known (`reported_at` not null: see docs/data.md; backfilled history has none); `timed_reports` says
how many of a source's reports that is. Per source:

- speed_median_s: median, over the incidents it reported with a known time, of the delay between the
  first known report of the incident by any source and its own; 0 when it was first. Null without
  timed reports. Score part: 1 / (1 + median / 1 day), so a source one day behind scores 0.5.
- exclusivity: share of the incidents it reported with a known time where it was first among the
  reports with a known time (ties count for every source that was first). Null without timed reports.
- coverage: share of all incidents in the window that it reported.
- accuracy: share of agreeing checks between its reports and the merged exploit: amount within 10 %
  (both known), chain equal (both known, not "multichain"/"other"), incident day within 1 day.
  Null when no check applies.
- uptime: share of successful runs in the window (all-time runs when none in the window); null when
  the source never ran.

score = (0.25·speed + 0.20·exclusivity + 0.25·coverage + 0.20·accuracy + 0.10·uptime) / (sum of the
weights used), rounded to 4 places. Speed and exclusivity are left out (with their weights) when null:
a source whose report times are unknown is scored on what is known, neither punished nor rewarded for
the missing times. Another null part counts 0. Best first; ties by reports, then name.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.exploits.models import Exploit, ReportRow, is_public
from kamiyo.ingest.models import SourceRun, SourceState
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources import REGISTRY

WEIGHTS = {"speed": 0.25, "exclusivity": 0.20, "coverage": 0.25, "accuracy": 0.20, "uptime": 0.10}
TIMED_PARTS = frozenset({"speed", "exclusivity"})  # left out of the score when the source has no timed report
SPEED_HALF_LIFE_S = 86_400.0
AMOUNT_TOLERANCE = 0.10
DAY_TOLERANCE = timedelta(days=1)
NO_CHAIN = frozenset({None, "multichain", "other"})


@dataclass
class _Tally:
    incidents: set[int] = field(default_factory=set)
    reports: int = 0
    timed_reports: int = 0
    delays: list[float] = field(default_factory=list)
    first: int = 0
    checks: int = 0
    agreements: int = 0


def _accuracy(tally: _Tally, report: Any, exploit: Any) -> None:
    if report.amount_usd is not None and exploit.amount_usd:
        tally.checks += 1
        tally.agreements += abs(report.amount_usd - exploit.amount_usd) <= AMOUNT_TOLERANCE * exploit.amount_usd
    if report.chain not in NO_CHAIN and exploit.chain not in NO_CHAIN:
        tally.checks += 1
        tally.agreements += report.chain == exploit.chain
    tally.checks += 1
    tally.agreements += abs(report.timestamp - exploit.timestamp) <= DAY_TOLERANCE


async def _tallies(session: AsyncSession, since: datetime) -> tuple[dict[str, _Tally], int]:
    rows = await session.execute(
        select(
            ReportRow.exploit_id,
            ReportRow.source,
            ReportRow.reported_at,
            ReportRow.amount_usd,
            ReportRow.chain,
            ReportRow.timestamp,
            Exploit.amount_usd.label("e_amount"),
            Exploit.chain.label("e_chain"),
            Exploit.timestamp.label("e_timestamp"),
        )
        .join(Exploit, Exploit.id == ReportRow.exploit_id)
        .where(Exploit.timestamp >= since, is_public())
    )
    by_incident: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_incident[row.exploit_id].append(row)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for reports in by_incident.values():
        earliest: dict[str, datetime] = {}
        for r in reports:
            tally = tallies[r.source]
            if r.reported_at is not None:  # speed and exclusivity only from reports whose time is known
                earliest[r.source] = min(earliest.get(r.source, r.reported_at), r.reported_at)
                tally.timed_reports += 1
            tally.reports += 1
            tally.incidents.add(r.exploit_id)
            merged = _Merged(r.e_amount, r.e_chain, r.e_timestamp)
            _accuracy(tally, r, merged)
        first_at = min(earliest.values(), default=None)
        for source, at in earliest.items():
            assert first_at is not None
            tally = tallies[source]
            tally.delays.append((at - first_at).total_seconds())
            tally.first += at == first_at
    return tallies, len(by_incident)


@dataclass(frozen=True)
class _Merged:
    amount_usd: float | None
    chain: str | None
    timestamp: datetime


async def _uptimes(session: AsyncSession, since: datetime) -> dict[str, float]:
    rows = await session.execute(
        select(SourceRun.source, func.count(), func.sum(case((SourceRun.ok, 1), else_=0)))
        .where(SourceRun.started_at >= since)
        .group_by(SourceRun.source)
    )
    found = {source: float(ok or 0) / total for source, total, ok in rows if total}
    for state in (await session.execute(select(SourceState))).scalars():
        if state.name not in found and state.runs:
            found[state.name] = (state.runs - state.failures) / state.runs
    return found


def _round(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)


def score(parts: dict[str, float | None]) -> float:
    """The weighted mean of the parts; a null speed or exclusivity is left out with its weight."""
    used = {k: v for k, v in parts.items() if v is not None or k not in TIMED_PARTS}
    return sum(WEIGHTS[k] * (v or 0.0) for k, v in used.items()) / sum(WEIGHTS[k] for k in used)


async def compute_rankings(session: AsyncSession, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The ranking rows, best first (see the module docstring for every component)."""
    since = (now or utcnow()) - timedelta(days=days)
    tallies, total = await _tallies(session, since)
    uptimes = await _uptimes(session, since)
    rows: list[dict[str, Any]] = []
    for name in sorted(set(REGISTRY) | set(tallies)):
        tally = tallies.get(name, _Tally())
        count = len(tally.incidents)
        speed = statistics.median(tally.delays) if tally.delays else None
        parts = {
            "speed": 1 / (1 + speed / SPEED_HALF_LIFE_S) if speed is not None else None,
            "exclusivity": tally.first / len(tally.delays) if tally.delays else None,
            "coverage": count / total if total else None,
            "accuracy": tally.agreements / tally.checks if tally.checks else None,
            "uptime": uptimes.get(name),
        }
        rows.append(
            {
                "source": name,
                "score": round(score(parts), 4),
                "speed_median_s": _round(speed, 1),
                "exclusivity": _round(parts["exclusivity"]),
                "coverage": _round(parts["coverage"]),
                "accuracy": _round(parts["accuracy"]),
                "uptime": _round(parts["uptime"]),
                "reports": tally.reports,
                "timed_reports": tally.timed_reports,
            }
        )
    rows.sort(key=lambda r: (-float(r["score"] or 0), -int(r["reports"] or 0), str(r["source"])))
    return [{"rank": i, **row} for i, row in enumerate(rows, start=1)]
